"""Loss curves of a training run, from its metrics.jsonl records."""

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def training_curves(records: list[dict]) -> go.Figure:
    """Loss curves from a run's metrics.jsonl records: training loss by step (logged windows)
    and, per finished epoch, mean training loss and validation NLL. Markers, so a single
    point (the first epoch) is visible too."""
    steps = [r for r in records if r.get("train_loss") is not None and "best_val_nll" not in r]
    epochs = [r for r in records if "best_val_nll" in r]
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=["training loss by step", "per epoch"],
    )
    fig.add_trace(
        go.Scatter(
            x=[r["step"] for r in steps],
            y=[r["train_loss"] for r in steps],
            mode="lines+markers",
            name="training loss (window)",
            line=dict(color="#1f3b73"),
            marker=dict(size=4),
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[r["epoch"] for r in epochs],
            y=[r.get("train_loss") for r in epochs],
            mode="lines+markers",
            name="training loss (epoch mean)",
            line=dict(color="#1f3b73", dash="dot"),
        ),
        row=1,
        col=2,
    )
    val = [r for r in epochs if r.get("val_nll") is not None]
    fig.add_trace(
        go.Scatter(
            x=[r["epoch"] for r in val],
            y=[r["val_nll"] for r in val],
            mode="lines+markers",
            name="validation NLL",
            line=dict(color="#CC6677"),
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="step", row=1, col=1, gridcolor="#eee")
    fig.update_xaxes(title_text="epoch", row=1, col=2, gridcolor="#eee", dtick=1)
    fig.update_yaxes(title_text="NLL (nats / residue)", row=1, col=1, gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee", row=1, col=2)
    fig.update_layout(
        height=300,
        margin=dict(l=60, r=10, t=40, b=40),
        plot_bgcolor="white",
        paper_bgcolor="white",
        legend=dict(orientation="h", y=-0.25, x=0.0),
    )
    return fig
