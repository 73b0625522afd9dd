"""Plotly loss curves of a training run, for the Train page (the model card's PNG is
eval/figures.learning_curve). Both take their points from train.runlog.series; this module
only draws the series it is given."""

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def training_curves(series: dict[str, tuple[list, list]]) -> go.Figure:
    """Training loss by step (logged windows) and, per finished epoch, mean training loss and
    validation NLL, from `train.runlog.loss_series`: {"step_loss", "epoch_loss", "val_nll"} ->
    (x, y). Markers, so a single point (the first epoch) is visible too."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=["training loss by step", "per epoch"],
    )
    curves = (  # (series, name, line, marker, column)
        ("step_loss", "training loss (window)", dict(color="#1f3b73"), dict(size=4), 1),
        ("epoch_loss", "training loss (epoch mean)", dict(color="#1f3b73", dash="dot"), None, 2),
        ("val_nll", "validation NLL", dict(color="#CC6677"), None, 2),
    )
    for key, name, line, marker, col in curves:
        xs, ys = series[key]
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, line=line, marker=marker),
            row=1,
            col=col,
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
