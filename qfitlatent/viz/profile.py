"""The flexibility of every residue along its chain: one bar track per chain; and, for
structures of many chains, one row per chain to choose which tracks to draw. Pure: no
streamlit here; arrays in (chain, number, label, value per residue or chain), a plotly figure
out."""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .colours import flexibility_colour

# The score is a probability, drawn on its absolute 0–1 scale so that the same height and colour
# mean the same probability in every structure; altloc triangles sit above the bars, split
# squares below them.
BAR_HOVER = (
    "%{customdata[1]}<br>p(flexible) %{y:.2f}: probability the side chain has ≥ 2 conformers"
    "<extra></extra>"
)
TRIANGLE_Y = 1.12
SQUARE_Y = -0.06
Y_RANGE = [-0.1, 1.2]


def flexibility_profile(
    chains: list[str],  # [N] chain of each residue, sequence order
    resnum: np.ndarray,  # [N] residue numbers
    labels: list[str],  # [N] "A99 SER"
    value: np.ndarray,  # [N] the flexibility score, a probability in [0, 1]
    n_obs: np.ndarray,  # [N] side-chain conformers in the input
    *,
    index: list[int] | None = None,  # [N] residue index in the prediction (click → residue)
    split: np.ndarray | None = None,  # [N] bool: residues the multiconformer model splits
) -> go.Figure:
    """The flexibility of every residue along its chain, one track per chain, so the ticks are
    residue numbers plotly spaces for any length. Triangles mark residues the input models with
    altlocs, squares under the bars those the multiconformer model splits. Every point carries
    its residue index as customdata, so a click can select it."""
    value = np.asarray(value, dtype=float)
    n_obs = np.asarray(n_obs)
    resnum = np.asarray(resnum)
    index = list(range(len(labels))) if index is None else list(index)
    order = list(dict.fromkeys(chains))  # chains in order of first appearance
    n_rows = max(1, len(order))
    row_h = 120 if n_rows <= 2 else (80 if n_rows <= 6 else 60)  # px per track
    fig = make_subplots(rows=n_rows, cols=1, vertical_spacing=min(0.3, 34 / (row_h * n_rows + 60)))
    colours = [flexibility_colour(v) for v in value]  # [N]
    for r, chain in enumerate(order, start=1):
        sel = [j for j, c in enumerate(chains) if c == chain]  # this chain's residues
        for trace in _chain_traces(sel, resnum, value, colours, n_obs, labels, index, split):
            fig.add_trace(trace, row=r, col=1)
        _chain_axes(fig, r, chain, resnum[sel])
    fig.update_xaxes(title=dict(text="residue number", font=dict(size=11)), row=n_rows, col=1)
    fig.update_layout(
        height=row_h * n_rows + 70,
        margin=dict(l=60, r=10, t=10, b=45),
        bargap=0.05,
        paper_bgcolor="white",
        plot_bgcolor="white",
        showlegend=False,
        clickmode="event",  # a click picks the residue (ui.profile_pick); nothing stays selected
        dragmode=False,
        hovermode="closest",
        meta="profile",  # names the chart for tests and page scripts
    )
    return fig


def _chain_traces(sel, resnum, value, colours, n_obs, labels, index, split) -> list:
    """One chain's track: the bars, triangles above those the input models with ≥ 2 side-chain
    conformers, squares below those the multiconformer model splits (none where there are
    none). sel [M] indexes the chain's residues in the [N] arrays; customdata is
    [index, label] so a click finds the residue."""
    traces = [
        go.Bar(
            x=resnum[sel],
            y=value[sel],
            marker=dict(color=[colours[j] for j in sel], line=dict(width=0)),
            customdata=[[index[j], labels[j]] for j in sel],
            name="p(flexible)",
            hovertemplate=BAR_HOVER,
            showlegend=False,
        )
    ]
    multi = [j for j in sel if n_obs[j] >= 2]
    if multi:
        traces.append(
            go.Scatter(
                x=resnum[multi],
                y=np.full(len(multi), TRIANGLE_Y),
                mode="markers",
                name="altlocs in the input",
                marker=dict(symbol="triangle-down", size=7, color="#111"),
                customdata=[[index[j], labels[j]] for j in multi],
                hovertemplate="%{customdata[1]}: side-chain altlocs in the input<extra></extra>",
                showlegend=False,
            )
        )
    cut = [j for j in sel if split is not None and split[j]]
    if cut:
        traces.append(
            go.Scatter(
                x=resnum[cut],
                y=np.full(len(cut), SQUARE_Y),
                mode="markers",
                name="split in multiconformer.pdb",
                marker=dict(symbol="square", size=5, color="#1f3b73"),
                customdata=[[index[j], labels[j]] for j in cut],
                hovertemplate="%{customdata[1]}: split in multiconformer.pdb<extra></extra>",
                showlegend=False,
            )
        )
    return traces


def _chain_axes(fig: go.Figure, r: int, chain: str, chain_resnum) -> None:
    """Track r's axes: x spans the chain's residue numbers [M] with a residue to spare either
    side; y spans 0–1 with room for the triangles above and the squares below."""
    span = (float(chain_resnum.min()) - 1, float(chain_resnum.max()) + 1)
    fig.update_xaxes(range=span, row=r, col=1, showgrid=False, ticks="outside", nticks=20,
                     tickfont=dict(size=10))  # fmt: skip
    fig.update_yaxes(
        range=Y_RANGE,
        row=r, col=1,
        gridcolor="#eee",
        title=dict(text=f"chain {chain}", font=dict(size=11)), nticks=3,
        tickfont=dict(size=9),
    )  # fmt: skip


OVERVIEW_ROW_PX = 20  # one chain per row: 18 chains make a 420 px figure


def chain_overview(
    chains: list[str],  # [C] chain ids, file order
    residues: np.ndarray,  # [C] residues with χ
    expected: np.ndarray,  # [C] Σ flexibility: the expected number of flexible residues
    mean: np.ndarray,  # [C] mean flexibility, 0–1
    *,
    shown: list[str],  # chains whose tracks the profile draws
) -> go.Figure:
    """One row per chain, first chain on top: a bar as long as its expected number of flexible
    residues, coloured by its mean flexibility (the profile's scale), the numbers beside it.
    Chains the profile shows are drawn in full, the others faded. customdata [chain] so a click
    can show or hide that chain."""
    expected = np.asarray(expected, dtype=float)
    on = np.array([c in shown for c in chains])
    text = [f"{e:.1f} of {n:,} · mean {m:.2f}" + ("" if s else " · hidden")
            for e, n, m, s in zip(expected, residues, mean, on, strict=True)]  # fmt: skip
    fig = go.Figure(
        go.Bar(
            y=[f"chain {c}" for c in chains],
            x=expected.tolist(),  # a list, not plotly's binary array: page scripts read it
            orientation="h",
            marker=dict(
                color=[flexibility_colour(v) for v in mean],
                line=dict(width=0),
                opacity=np.where(on, 1.0, 0.3).tolist(),  # the hidden chains faded
            ),
            text=text,
            textposition="outside",
            cliponaxis=False,
            textfont=dict(size=10),
            customdata=[[c] for c in chains],
            hovertemplate="chain %{customdata[0]}: %{x:.1f} expected flexible residues "
            "(Σ p(flexible))<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=10), type="category")
    fig.update_xaxes(
        title=dict(text="expected flexible residues (Σ p(flexible))", font=dict(size=11)),
        range=[0, 1.45 * max(float(expected.max(initial=0.0)), 1.0)],  # room for the numbers
        gridcolor="#eee",
        tickfont=dict(size=10),
    )
    fig.update_layout(
        height=OVERVIEW_ROW_PX * len(chains) + 60,
        margin=dict(l=70, r=10, t=5, b=40),
        bargap=0.25,
        paper_bgcolor="white",
        plot_bgcolor="white",
        clickmode="event",  # a click picks the residue (ui.profile_pick); nothing stays selected
        dragmode=False,
        hovermode="closest",
        meta="chain-overview",
    )
    return fig
