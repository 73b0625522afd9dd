"""The flexibility of every residue along its chain: one bar track per chain. Pure: no
streamlit here; arrays in (chain, number, label, value per residue), a plotly figure out."""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .colours import flexibility_colour, flexibility_scale


def flexibility_profile(
    chains: list[str],  # [N] chain of each residue, sequence order
    resnum: np.ndarray,  # [N] residue numbers
    labels: list[str],  # [N] "A99 SER"
    value: np.ndarray,  # [N] p_flexible in [0, 1], or entropy (nats) without a flexibility head
    n_obs: np.ndarray,  # [N] side-chain conformers in the input
    *,
    is_probability: bool = True,
    selected: int | None = None,
    index: list[int] | None = None,  # [N] residue index in the prediction (click → residue)
    split: np.ndarray | None = None,  # [N] bool: residues the multiconformer model splits
) -> go.Figure:
    """The flexibility of every residue along its chain, one track per chain, so the ticks are
    residue numbers plotly spaces for any length. Triangles mark residues the input models with
    altlocs, squares under the bars those the multiconformer model splits; the selected residue
    gets a dotted line. Every point carries its residue index as
    customdata, so a click can select it."""
    value = np.asarray(value, dtype=float)
    n_obs = np.asarray(n_obs)
    resnum = np.asarray(resnum)
    index = list(range(len(labels))) if index is None else list(index)
    order = list(dict.fromkeys(chains))
    n_rows = max(1, len(order))
    row_h = 120 if n_rows <= 2 else (80 if n_rows <= 6 else 60)
    fig = make_subplots(rows=n_rows, cols=1, vertical_spacing=min(0.3, 34 / (row_h * n_rows + 60)))
    if is_probability:
        what = "p(flexible)"
        hover = "%{customdata[1]}<br>p(flexible) %{y:.2f}: probability the side chain has ≥ 2 "
        hover += "conformers<extra></extra>"
        lo, hi = 0.0, 1.0
        colours = [flexibility_colour(v) for v in value]
    else:
        what = "entropy"
        hover = "%{customdata[1]}<br>entropy %{y:.2f} nats: spread of the predicted χ density "
        hover += "(negative = sharper than 1 radian)<extra></extra>"
        lo, hi = min(0.0, float(value.min(initial=0.0))), float(value.max(initial=1.0))
        colours = [flexibility_colour(v) for v in flexibility_scale(value)]
    top = hi + 0.12 * (hi - lo or 1.0)
    for r, chain in enumerate(order, start=1):
        sel = [j for j, c in enumerate(chains) if c == chain]
        custom = [[index[j], labels[j]] for j in sel]
        fig.add_trace(
            go.Bar(
                x=resnum[sel],
                y=value[sel],
                marker=dict(color=[colours[j] for j in sel], line=dict(width=0)),
                customdata=custom,
                name=what,
                hovertemplate=hover,
                showlegend=False,
            ),
            row=r,
            col=1,
        )
        multi = [j for j in sel if n_obs[j] >= 2]
        if multi:
            fig.add_trace(
                go.Scatter(
                    x=resnum[multi],
                    y=np.full(len(multi), top),
                    mode="markers",
                    name="altlocs in the input",
                    marker=dict(symbol="triangle-down", size=7, color="#111"),
                    customdata=[[index[j], labels[j]] for j in multi],
                    hovertemplate="%{customdata[1]}: side-chain altlocs in the input"
                    "<extra></extra>",
                    showlegend=False,
                ),
                row=r,
                col=1,
            )
        cut = [j for j in sel if split is not None and split[j]]
        if cut:
            fig.add_trace(
                go.Scatter(
                    x=resnum[cut],
                    y=np.full(len(cut), lo - 0.06 * (hi - lo or 1.0)),
                    mode="markers",
                    name="split in multiconformer.pdb",
                    marker=dict(symbol="square", size=5, color="#1f3b73"),
                    customdata=[[index[j], labels[j]] for j in cut],
                    hovertemplate="%{customdata[1]}: split in multiconformer.pdb<extra></extra>",
                    showlegend=False,
                ),
                row=r,
                col=1,
            )
        if selected is not None and selected in sel:
            x = float(resnum[selected])
            axis = "" if r == 1 else str(r)
            fig.add_vline(x=x, line=dict(color="#111", width=1.5, dash="dot"), row=r, col=1)
            # The label on the side of the line with more room, so it never leaves the track.
            right = x > (float(resnum[sel].min()) + float(resnum[sel].max())) / 2
            fig.add_annotation(
                x=x, y=1.0, xref=f"x{axis}", yref=f"y{axis} domain",
                xanchor="right" if right else "left", yanchor="top", xshift=-4 if right else 4,
                text=labels[selected], showarrow=False,
                font=dict(size=11, color="#111"), bgcolor="rgba(255,255,255,0.85)",
            )  # fmt: skip
        span = (float(resnum[sel].min()) - 1, float(resnum[sel].max()) + 1)
        fig.update_xaxes(range=span, row=r, col=1, showgrid=False, ticks="outside", nticks=20,
                         tickfont=dict(size=10))  # fmt: skip
        fig.update_yaxes(
            range=[lo - 0.1 * (hi - lo or 1.0), top + 0.08 * (hi - lo or 1.0)], row=r, col=1,
            gridcolor="#eee",
            title=dict(text=f"chain {chain}", font=dict(size=11)), nticks=3,
            tickfont=dict(size=9),
        )  # fmt: skip
    fig.update_xaxes(title=dict(text="residue number", font=dict(size=11)), row=n_rows, col=1)
    fig.update_layout(
        height=row_h * n_rows + 70,
        margin=dict(l=60, r=10, t=10, b=45),
        bargap=0.05,
        paper_bgcolor="white",
        plot_bgcolor="white",
        showlegend=False,
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
        meta="profile",  # names the chart for tests and page scripts
    )
    return fig
