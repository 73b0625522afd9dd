"""χ pictures of one residue's mixture: densities on a grid, a polar panel per χ and the χ1–χ2
torus, with the input's altlocs and sampled χ marked. Pure: no streamlit here.

Angles are radians in, degrees on screen. Densities come from `mixture.log_von_mises`, the
function the loss uses, so the plots show exactly what the model was trained on. Records in:
mixture arrays (logits [K], mu and kappa [K, D], pi_symmetric [D]), altlocs as
{"chi": [D] rad, "mask": [D] bool, "occ": float, "altloc": str}, samples [S, D] rad.
"""

import math
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
import torch

from ..mixture import log_von_mises
from .colours import component_colour
from .placement import CHAR_W, place_labels, text_box
from .rotamers import component_names, wrap_deg

# --- χ densities -------------------------------------------------------------------------------


def chi_density(
    logits: np.ndarray,  # [K]
    mu: np.ndarray,  # [K, D] radians
    kappa: np.ndarray,  # [K, D]
    pi_symmetric: np.ndarray,  # [D] bool
    grid: np.ndarray,  # [G] radians
) -> tuple[np.ndarray, np.ndarray]:
    """Marginal density of each χ on `grid`, total [D, G] and per component [K, D, G].

    Components are products of independent von Mises, so the marginal of χ_d is exactly the
    mixture Σ_k π_k vM(χ_d; μ_kd, κ_kd); per-component curves are weighted by π_k.
    """
    w = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1)  # [K]
    x = torch.as_tensor(grid, dtype=torch.float64)[None, None, :]  # [1, 1, G]
    mu_t = torch.as_tensor(mu, dtype=torch.float64)[..., None]  # [K, D, 1]
    kappa_t = torch.as_tensor(kappa, dtype=torch.float64)[..., None]  # [K, D, 1]
    sym = torch.as_tensor(np.asarray(pi_symmetric, dtype=bool))[None, :, None]  # [1, D, 1]
    per = w[:, None, None] * log_von_mises(x, mu_t, kappa_t, sym).exp()  # [K, D, G]
    return per.sum(0).numpy(), per.numpy()


def joint_density(logits, mu, kappa, pi_symmetric, grid, dims=(0, 1)) -> np.ndarray:
    """Joint density of χ_a, χ_b on grid × grid [G, G] (rows χ_b, columns χ_a)."""
    a, b = dims
    _, per = chi_density(logits, mu, kappa, pi_symmetric, grid)  # [K, D, G]
    w = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()  # [K]
    # per[k, d] already carries π_k once; divide one factor out so the product has π_k once.
    safe_w = np.where(w > 0, w, 1.0)[:, None]
    return np.einsum("kg,kh->hg", per[:, a], per[:, b] / safe_w)


def _deg(rad) -> np.ndarray:
    return np.degrees(np.asarray(rad, dtype=float))


def merge_altlocs(observed: list[dict], dims: list[int], tol_deg: float = 3.0) -> list[dict]:
    """Observed altlocs defined on every χ in `dims`, those within `tol_deg` of each other there
    merged into one mark ("A+B 0.69"), so labels of coinciding altlocs do not overprint.
    Returns [{"deg": [len(dims)] degrees, "occ": summed occupancy, "text": label}]."""
    groups: list[dict] = []
    for o in observed:
        mask = np.asarray(o["mask"])
        if not all(mask[d] for d in dims):
            continue
        deg = [float(wrap_deg(_deg(o["chi"][d]))) for d in dims]
        for g in groups:
            if all(abs(wrap_deg(a - b)) <= tol_deg for a, b in zip(deg, g["deg"], strict=True)):
                g["names"].append(o["altloc"] or "input")
                g["occ"] += o["occ"]
                break
        else:
            groups.append({"deg": deg, "names": [o["altloc"] or "input"], "occ": o["occ"]})
    return [
        {"deg": g["deg"], "occ": g["occ"], "text": f"{'+'.join(g['names'])} {g['occ']:.2f}"}
        for g in groups
    ]


def _nice(x: float) -> float:
    """1, 2 or 5 × 10^k at or below x."""
    if x <= 0:
        return 1.0
    e = math.floor(math.log10(x))
    m = x / 10**e
    return (5.0 if m >= 5 else 2.0 if m >= 2 else 1.0) * 10**e


def _fmt_num(x: float) -> str:
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


# --- χ circle plots -----------------------------------------------------------------------------

# Angular ticks: the wells a crystallographer names, and 0° for orientation.
CHI_TICKS = ((0.0, "0°"), (60.0, "g+ 60°"), (180.0, "t 180°"), (300.0, "g− −60°"))
PANEL_W = 250  # px per χ panel
LEGEND_W = 215  # px for the legend column on the right
CIRCLE_R = 72  # px, polar radius
PAD = 10
TITLE_H = 26
CIRCLE_H = 330
# Under the circle figure: what its legend's components and its radius mean.
COMPONENT_CAPTION = (
    "A component is one rotamer the model proposes (one peak on every χ); its % is the share of "
    "conformations it accounts for. Names: p, t, m = χ near +60° (g+), 180° (t), −60° (g−); "
    "planar end groups by their angle. Radius: probability density per radian."
)


def _polar_xy(cx, cy, r, theta_deg):
    """Screen position of polar (r px, θ) with 0° at the top, angles counter-clockwise."""
    t = math.radians(theta_deg)
    return cx - r * math.sin(t), cy - r * math.cos(t)


def _outward_anchor(theta_deg):
    s, c = math.sin(math.radians(theta_deg)), math.cos(math.radians(theta_deg))
    xa = "center" if abs(s) < 0.3 else ("right" if s > 0 else "left")
    ya = "bottom" if c > 0.7 else ("top" if c < -0.7 else "middle")
    return xa, ya


def _paper(fig_w, fig_h, x, y, xa, ya, text, size, box=None, **kw) -> dict:
    """An annotation at pixel (x, y) of the figure (y down). Paper coordinates span the plot
    area, so `box` (x0, y0, x1, y1) gives that area in pixels where the margins are not 0."""
    x0, y0, x1, y1 = box or (0, 0, fig_w, fig_h)
    return dict(x=(x - x0) / (x1 - x0), y=1.0 - (y - y0) / (y1 - y0), xref="paper", yref="paper",
                xanchor=xa,
                yanchor=ya, text=text, showarrow=False, font=dict(size=size, color=kw.pop(
                    "color", "#333")), **kw)  # fmt: skip


class _Panel(NamedTuple):
    """Where one χ panel sits, in pixels of the whole figure (y down). Its traces, its polar
    axis and its pixel labels all derive from this, so it is passed whole to each layer."""

    d: int  # which χ, 0-based
    subplot: str  # plotly's polar id: "polar", "polar2", …
    cx: float  # circle centre, px
    cy: float
    r_max: float  # density per radian at the rim (the radial range)
    fig_w: int  # whole figure, px
    fig_h: int


def chi_circle_figure(
    logits: np.ndarray,  # [K]
    mu: np.ndarray,  # [K, D]
    kappa: np.ndarray,  # [K, D]
    n_chi: int,
    pi_symmetric: np.ndarray,  # [D] bool
    *,
    observed: list[dict] = (),  # {"chi": [D] rad, "mask": [D] bool, "occ": float, "altloc": str}
    samples: np.ndarray | None = None,  # [S, D] rad
    title: str = "",
    resname: str = "",
    chi_atoms: list[tuple[str, ...]] = (),
    ringer: dict | None = None,  # {"chi1": [T] deg, "curves": {map label: [T] σ}}
    n_grid: int = 360,  # 1°: the sharpest predicted components (κ ~ 800, σ ~ 2°) stay smooth
) -> go.Figure:
    """One polar panel per defined χ: mixture density around the circle (radial scale in
    density per radian), the components that carry weight (dotted, named by rotamer, with their
    mean as a spoke), the input's altlocs (diamonds on the rim, letters inside, occupancies
    under the panel) and sampled χ (ticks on the rim). 0° at the top, counter-clockwise.
    With `ringer` (the residue's Ringer scan), the χ1 panel also draws the map at the γ atom as
    χ1 turns, on its own radial scale in σ (an overlaid polar axis, its 1σ circle labelled and
    its range said under the figure): the map's evidence over the network's prior.

    The figure has a fixed pixel size (show it with width="content") so every label is placed
    in pixels, clear of every other: nothing overlaps and nothing leaves the figure.
    """
    n_chi = max(1, int(n_chi))
    grid = np.linspace(-math.pi, math.pi, n_grid, endpoint=False)  # [G] rad
    total, per = chi_density(logits, mu, kappa, pi_symmetric, grid)  # [D, G], [K, D, G]
    w = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()  # [K]
    names = component_names(resname, _deg(mu), w, pi_symmetric, n_chi)  # {k: "mt−80"}
    theta = np.append(_deg(grid), _deg(grid[0]) + 360.0)  # [G + 1] deg: closed curves
    fig_w = 2 * PAD + PANEL_W * n_chi + LEGEND_W
    fig_h = CIRCLE_H + (RINGER_FOOT_H if ringer else 0)
    cy = TITLE_H + 20 + 22 + CIRCLE_R  # title, panel title, room for the top tick label
    # Traces and layout are collected, then made into a figure once: plotly validates on every
    # add_trace and update_layout, which took most of the figure's build (0.35 of 0.5 s).
    traces, layout, notes = [], {}, []
    if title:
        notes.append(_paper(fig_w, fig_h, PAD, 4, "left", "top", f"<b>{title}</b>", 14,
                            color="#111"))  # fmt: skip
    for d in range(n_chi):
        p = _Panel(d, "polar" if d == 0 else f"polar{d + 1}", PAD + PANEL_W * (d + 0.5), cy,
                   float(total[d].max()) * 1.18, fig_w, fig_h)  # fmt: skip
        obs = merge_altlocs(observed, [d])  # altlocs defined on this χ, coinciding ones merged
        scale = _nice(float(total[d].max()) * 0.6)  # the one labelled grid circle, /rad
        traces += [
            *_component_traces(p, names, per[:, d], mu[:, d], kappa[:, d], pi_symmetric[d], theta),
            _total_trace(p, total[d], theta),
            *_sample_traces(p, samples),
            *_altloc_traces(p, obs),
        ]
        head = _panel_head(d, chi_atoms, pi_symmetric[d])
        sigma = None
        if ringer and d == 0:
            overlay = f"polar{n_chi + 1}"
            ringer_traces, layout[overlay], sigma = _ringer(p, ringer, overlay)
            traces += ringer_traces
            notes += _ringer_foot(p, sigma)
        notes += _panel_labels(p, head, scale, obs, sigma) + _occupancy_notes(p, obs)
        layout[p.subplot] = _polar_axes(p, scale)
    layout.update(_circle_layout(fig_w, fig_h, notes))
    return go.Figure(data=traces, layout=layout)


# --- the Ringer scan over the χ1 panel -----------------------------------------------------------

RINGER_COLOURS = {"2mFo-DFc": "#3a6fd8", "mFo-DFc": "#1a9e1a"}  # as the viewer's meshes
RINGER_FOOT_H = 36  # px under the panels for the two lines that give the σ scale
RINGER_LEVEL = 1.0  # σ: the labelled circle, the 2mFo-DFc contour the viewer draws


class _SigmaScale(NamedTuple):
    """The Ringer overlay's radial axis: σ at the centre and at the rim."""

    lo: float
    hi: float

    def radius_px(self, value: float) -> float:
        return CIRCLE_R * (value - self.lo) / (self.hi - self.lo)


def sigma_scale(curves: dict) -> _SigmaScale:
    """The overlay's radial range: from a little below the lowest value (never above 0σ, so the
    mean of the map is inside the circle) to a little above the highest (never below 1σ)."""
    values = np.concatenate([np.asarray(v, dtype=float) for v in curves.values()])
    values = values[np.isfinite(values)]
    lo = min(float(values.min()) if len(values) else 0.0, 0.0)
    hi = max(float(values.max()) if len(values) else 1.0, RINGER_LEVEL)
    pad = 0.08 * (hi - lo)
    return _SigmaScale(math.floor((lo - pad) * 2) / 2, hi + pad)


def _ringer(p: _Panel, ringer: dict, subplot: str) -> tuple[list, dict, _SigmaScale]:
    """The Ringer curves on a polar axis overlaid on panel `p` (same domain and orientation,
    transparent, its own radial range in σ): (traces, that axis, its range for the labels)."""
    scale = sigma_scale(ringer["curves"])
    theta = np.append(ringer["chi1"], ringer["chi1"][0] + 360.0)  # [T + 1] deg, closed
    traces = []
    for label, values in ringer["curves"].items():
        traces.append(
            go.Scatterpolar(
                r=np.append(values, values[0]),  # [T + 1] σ
                theta=theta,
                mode="lines",
                line=dict(color=RINGER_COLOURS.get(label, "#555"), width=1.8),
                name=f"{label} at γ (σ, Ringer)",
                legendgroup=f"ringer-{label}",
                subplot=subplot,
                meta="ringer",
                hovertemplate=f"{label} at γ<br>χ1 %{{theta:.0f}}°<br>%{{r:.2f}} σ<extra></extra>",
            )
        )
    axes = _polar_axes(p, RINGER_LEVEL)
    axes["angularaxis"].update(visible=False)
    axes["radialaxis"].update(range=[scale.lo, scale.hi], gridcolor="#9ab", griddash="dash")
    axes["bgcolor"] = "rgba(0,0,0,0)"
    return traces, axes, scale


def _ringer_foot(p: _Panel, scale: _SigmaScale) -> list[dict]:
    """The σ scale in words, under the panels: the overlay has no axis labels of its own."""
    lines = (
        "Ringer scan (χ1 panel): the map at the γ atom as χ1 turns, in σ",
        f"radius {scale.lo:+.1f}σ at the centre, {scale.hi:+.1f}σ at the rim; "
        f"dashed circle {RINGER_LEVEL:g}σ",
    )
    y0 = p.fig_h - RINGER_FOOT_H + 2
    return [_paper(p.fig_w, p.fig_h, PAD, y0 + 16 * k, "left", "top", text, 10, color="#333")
            for k, text in enumerate(lines)]  # fmt: skip


def _component_traces(p: _Panel, names, per_d, mu_d, kappa_d, symmetric, theta) -> list:
    """Each named component on this χ as one trace: its density (dotted) and its mean as a
    spoke (two spokes, 180° apart, on a π-symmetric χ), joined by a gap (NaN). One trace per
    component, not one per curve and spoke: plotly's cost grows with the traces, and this
    figure is redrawn on every change of residue. per_d [K, G] density, mu_d and kappa_d [K],
    theta [G + 1]. The legend entry is the first panel's."""
    traces = []
    for k, name in names.items():
        mean = float(wrap_deg(_deg(mu_d[k])))
        spokes = [mean, mean + 180.0] if symmetric else [mean]
        # [G + 1 + 3 × spokes]: the closed curve, then per spoke a gap (NaN) and its two ends.
        # NaN, not None: the arrays stay numeric and go to the browser as packed binary.
        spoke_r = [np.nan, 0.0, p.r_max * 0.92]
        r = np.concatenate([per_d[k], per_d[k, :1], *[spoke_r] * len(spokes)])
        th = np.concatenate([theta, *[[np.nan, m, m] for m in spokes]])
        traces.append(
            go.Scatterpolar(
                r=r,
                theta=th,
                mode="lines",
                line=dict(color=component_colour(k), width=1.5, dash="dot"),
                name=name,
                legendgroup=f"c{k}",
                showlegend=p.d == 0,
                subplot=p.subplot,
                hovertemplate=f"{name} (mean {mean:.0f}°, κ {kappa_d[k]:.1f})<br>"
                f"χ{p.d + 1} %{{theta:.0f}}°<br>%{{r:.3f}} /rad<extra></extra>",
            )
        )
    return traces


def _total_trace(p: _Panel, total_d, theta) -> go.Scatterpolar:
    """The mixture's density on this χ, filled: total_d [G], theta [G + 1] deg."""
    return go.Scatterpolar(
        r=np.append(total_d, total_d[0]),  # [G + 1], closed
        theta=theta,
        mode="lines",
        fill="toself",
        line=dict(color="#1f3b73", width=2.5),
        fillcolor="rgba(31,59,115,0.15)",
        name="predicted density",
        legendgroup="total",
        showlegend=p.d == 0,
        subplot=p.subplot,
        hovertemplate=f"χ{p.d + 1} %{{theta:.0f}}°<br>density %{{r:.3f}} /rad<extra></extra>",
    )


def _sample_traces(p: _Panel, samples) -> list:
    """Sampled χ [S, D] rad as ticks on the rim; none without samples."""
    if samples is None or not len(samples):
        return []
    return [
        go.Scatterpolar(
            r=np.full(len(samples), p.r_max),
            theta=_deg(np.asarray(samples)[:, p.d]),  # [S] deg
            mode="markers",
            marker=dict(symbol="line-ns-open", size=10, color="#555", line=dict(width=1.5)),
            name="sampled χ",
            legendgroup="samples",
            showlegend=p.d == 0,
            subplot=p.subplot,
            hovertemplate="sample %{theta:.0f}°<extra></extra>",
        )
    ]


def _altloc_traces(p: _Panel, obs: list[dict]) -> list:
    """The input's altlocs (`merge_altlocs` on this χ) as diamonds on the rim, sized by
    occupancy; none when the input has none defined here."""
    if not obs:
        return []
    return [
        go.Scatterpolar(
            r=[p.r_max] * len(obs),
            theta=[o["deg"][0] for o in obs],
            mode="markers",
            customdata=[o["text"] for o in obs],
            marker=dict(
                symbol="diamond",
                size=[8 + 8 * o["occ"] for o in obs],  # area follows occupancy
                color="#111",
                line=dict(color="white", width=1),
            ),
            name="input altloc (occupancy)",
            legendgroup="obs",
            showlegend=p.d == 0,
            subplot=p.subplot,
            hovertemplate="altloc %{customdata}<br>χ %{theta:.0f}°<extra></extra>",
        )
    ]


def _panel_head(d: int, chi_atoms, symmetric) -> str:
    """The panel's title: "χ2 · CA–CB–CG–CD1 (π-symmetric)", atoms where known."""
    atoms = "–".join(chi_atoms[d]) if d < len(chi_atoms) else ""
    head = f"χ{d + 1}" + (f" · {atoms}" if atoms else "")
    return head + (" (π-symmetric)" if symmetric else "")


def _panel_labels(
    p: _Panel, head: str, scale: float, obs: list[dict], sigma: "_SigmaScale | None" = None
) -> list[dict]:
    """The panel's pixel labels, placed in this order because each claims its box before the
    next looks for room: title, well ticks outside the rim, the radial scale on its grid circle
    (and the Ringer overlay's 1σ circle), then the altloc letters inside the rim wherever they
    still fit (dropped where none does)."""
    fig_w, fig_h, cx, cy = p.fig_w, p.fig_h, p.cx, p.cy
    bounds = (cx - PANEL_W / 2 + 2, TITLE_H, cx + PANEL_W / 2 - 2, fig_h - 2)
    taken: list[tuple] = []  # (x0, y0, x1, y1) px boxes already used, grows as labels land
    ty = TITLE_H + 2
    taken.append(text_box(cx, ty, head, 12, "center", "top"))
    notes = [_paper(fig_w, fig_h, cx, ty, "center", "top", head, 12, color="#111")]
    for angle, text in CHI_TICKS:
        xa, ya = _outward_anchor(angle)
        x, y = _polar_xy(cx, cy, CIRCLE_R + 5, angle)
        taken.append(text_box(x, y, text, 10, xa, ya))
        notes.append(_paper(fig_w, fig_h, x, y, xa, ya, text, 10, color="#555"))
    sx, sy = _polar_xy(cx, cy, CIRCLE_R * scale / p.r_max, _scale_angle(obs))
    scale_text = f"{_fmt_num(scale)}/rad"
    taken.append(text_box(sx, sy, scale_text, 9))
    notes.append(_paper(fig_w, fig_h, sx, sy, "center", "middle", scale_text, 9,
                        color="#777", bgcolor="rgba(255,255,255,0.85)"))  # fmt: skip
    if sigma is not None:
        level = f"{RINGER_LEVEL:g}σ"
        r = sigma.radius_px(RINGER_LEVEL)
        angles = [_scale_angle(obs) + da for da in (180.0, 150.0, 210.0, 120.0, 240.0, 90.0)]
        spots = [(*_polar_xy(cx, cy, r, a), "center", "middle") for a in angles]
        item = {"text": level, "size": 9, "candidates": spots}
        spot = place_labels([item], taken, bounds)[0]
        if spot is not None:
            notes.append(_paper(fig_w, fig_h, *spot, level, 9, color="#3a6fd8",
                                bgcolor="rgba(255,255,255,0.85)"))  # fmt: skip
    letters = [o["text"].rsplit(" ", 1)[0] for o in obs]  # "A+B 0.69" → "A+B"
    items = [
        {
            "text": t,
            "size": 10,
            # Inward from the diamond, then a little either side of its angle.
            "candidates": [
                (*_polar_xy(cx, cy, CIRCLE_R * f, o["deg"][0] + da), "center", "middle")
                for f in (0.8, 0.62, 0.44, 0.28)
                for da in (0.0, 12.0, -12.0)
            ],
        }
        for t, o in zip(letters, obs, strict=True)
    ]
    for item, spot in zip(items, place_labels(items, taken, bounds), strict=True):
        if spot is not None:
            notes.append(_paper(fig_w, fig_h, *spot, item["text"], 10, color="#111",
                                bgcolor="rgba(255,255,255,0.7)"))  # fmt: skip
    return notes


def _scale_angle(obs: list[dict]) -> float:
    """The angle for the radial scale's label: of the gaps between the angular grid lines, the
    one farthest from every altloc diamond (the first gap when there are none)."""
    gaps = [a for a in (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)]
    obs_deg = [o["deg"][0] for o in obs]
    return max(gaps, key=lambda a: min([abs(wrap_deg(a - b)) for b in obs_deg] or [0]))


def _occupancy_notes(p: _Panel, obs: list[dict]) -> list[dict]:
    """Under the circle, the altlocs with their occupancies, as many per line as fit the panel
    width; nothing when the input has no altloc defined on this χ."""
    lines, line = [], ""
    for o in obs:
        part = o["text"] if not line else f"{line} · {o['text']}"
        if line and len(part) * CHAR_W * 10 > PANEL_W - 12:
            lines.append(line)
            part = o["text"]
        line = part
    lines += [line] if line else []
    notes, y = [], p.cy + CIRCLE_R + 26
    for text in ["input altlocs (occupancy):", *lines] if lines else []:
        notes.append(_paper(p.fig_w, p.fig_h, p.cx, y, "center", "top", text, 10, color="#333"))
        y += 15  # one text_box height at size 10
    return notes


def _polar_axes(p: _Panel, scale: float) -> dict:
    """The panel's polar subplot: placed in pixels (2 CIRCLE_R square at the panel's centre),
    0° at the top, counter-clockwise, one radial grid circle at `scale` (labelled in pixels)."""
    fig_w, fig_h, cx, cy = p.fig_w, p.fig_h, p.cx, p.cy
    return dict(
        domain=dict(
            x=[(cx - CIRCLE_R) / fig_w, (cx + CIRCLE_R) / fig_w],
            y=[1 - (cy + CIRCLE_R) / fig_h, 1 - (cy - CIRCLE_R) / fig_h],
        ),
        angularaxis=dict(
            rotation=90,
            direction="counterclockwise",
            thetaunit="degrees",
            gridcolor="#e5e5e5",
            tickmode="array",
            tickvals=[0, 60, 120, 180, 240, 300],
            showticklabels=False,
            ticks="",
        ),
        radialaxis=dict(
            range=[0, p.r_max],
            tickmode="array",
            tickvals=[scale],
            showticklabels=False,
            ticks="",
            gridcolor="#d9d9d9",
            showline=False,
        ),
        bgcolor="white",
    )


def _circle_layout(fig_w: int, fig_h: int, notes: list[dict]) -> dict:
    """Whole-figure layout: fixed pixel size, no margins (labels are placed in pixels), the
    legend in its own column right of the panels."""
    return dict(
        meta="chi-circles",
        annotations=notes,
        width=fig_w,
        height=fig_h,
        autosize=False,
        margin=dict(l=0, r=0, t=0, b=0),
        paper_bgcolor="white",
        legend=dict(
            x=(fig_w - LEGEND_W + 4) / fig_w,
            y=1 - (TITLE_H + 22) / fig_h,
            xanchor="left",
            yanchor="top",
            font=dict(size=11),
            bgcolor="rgba(0,0,0,0)",
        ),
    )


TORUS_W, TORUS_H = 520, 500
TORUS_BOX = (60, 40, 420, 400)  # plot area in px (x0, y0, x1, y1): 1 px per degree, square


def _torus_xy(chi1: float, chi2: float) -> tuple[float, float]:
    x0, y0, _, _ = TORUS_BOX
    return x0 + float(wrap_deg(chi1)) + 180.0, y0 + 180.0 - float(wrap_deg(chi2))


def torus_figure(
    logits,  # [K]
    mu,  # [K, D] rad
    kappa,  # [K, D]
    pi_symmetric,  # [D] bool
    *,
    observed: list[dict] = (),  # {"chi": [D] rad, "mask": [D] bool, "occ": float, "altloc": str}
    samples=None,  # [S, D] rad
    title: str = "",
    resname: str = "",
    n_chi: int = 2,
    n_grid: int = 90,
) -> go.Figure:
    """χ1–χ2 joint density as a heat map on the torus (−180°…180° both ways), with the same
    vocabulary as the circle plots: wells on the axes, components named by rotamer at their
    means, input altlocs by letter. Fixed pixel size, labels placed clear of each other."""
    # Cell centres, not edges: the heat map's cells then tile −180°…180° exactly.
    grid = np.linspace(-math.pi, math.pi, n_grid, endpoint=False) + math.pi / n_grid  # [G]
    dens = joint_density(logits, mu, kappa, pi_symmetric, grid)  # [G, G] rows χ2, cols χ1
    w = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()  # [K]
    names = component_names(resname, _deg(mu), w, pi_symmetric, n_chi)  # {k: "mt−80"}
    obs = merge_altlocs(observed, [0, 1])  # altlocs defined on χ1 and χ2, coinciding merged
    traces = [_torus_heatmap(_deg(grid), dens), *_torus_samples(samples),
              *_torus_means(names, mu), *_torus_altlocs(obs)]  # fmt: skip
    # Altloc labels first: they are the data, so they get the best spots.
    items = [(o["text"], _torus_xy(*o["deg"]), "#b00020") for o in obs]
    items += [(names[k], _torus_xy(_deg(mu[k, 0]), _deg(mu[k, 1])), "#111") for k in names]
    # One figure from traces and layout: plotly validates on each add_trace and update_layout.
    return go.Figure(data=traces, layout=_torus_layout(title, _torus_labels(items)))


def _torus_heatmap(deg, dens) -> go.Heatmap:
    """The joint density dens [G, G] (rows χ2, columns χ1) at cell centres deg [G]."""
    return go.Heatmap(
        x=deg,
        y=deg,
        z=dens,
        colorscale="Viridis",
        colorbar=dict(
            title=dict(text="density (/rad²)", side="right", font=dict(size=11)),
            thickness=14,
            x=1.0,
            xanchor="left",
            xref="paper",
        ),
        hovertemplate="χ1 %{x:.0f}°<br>χ2 %{y:.0f}°<br>%{z:.3f} /rad²<extra></extra>",
        showlegend=False,
    )


def _torus_samples(samples) -> list:
    """Sampled (χ1, χ2) from samples [S, D] rad as crosses; none without samples."""
    if samples is None or not len(samples):
        return []
    s = np.asarray(samples)  # [S, D]
    return [
        go.Scatter(
            x=_deg(s[:, 0]),
            y=_deg(s[:, 1]),
            mode="markers",
            name="sampled χ",
            marker=dict(symbol="x", size=8, color="white", line=dict(color="#222", width=1)),
            hovertemplate="sample χ1 %{x:.0f}°, χ2 %{y:.0f}°<extra></extra>",
        )
    ]


def _torus_means(names: dict, mu) -> list:
    """The named components' means (mu [K, D] rad) as crosses in each component's colour."""
    if not names:
        return []
    ks = list(names)
    return [
        go.Scatter(
            x=[float(wrap_deg(_deg(mu[k, 0]))) for k in ks],
            y=[float(wrap_deg(_deg(mu[k, 1]))) for k in ks],
            mode="markers",
            name="component mean",
            customdata=[names[k] for k in ks],
            marker=dict(
                symbol="cross",
                size=10,
                color=[component_colour(k) for k in ks],
                line=dict(color="white", width=1),
            ),
            hovertemplate="%{customdata}<br>χ1 %{x:.0f}°, χ2 %{y:.0f}°<extra></extra>",
        )
    ]


def _torus_altlocs(obs: list[dict]) -> list:
    """The input's altlocs (`merge_altlocs` on χ1, χ2) as diamonds; none without any."""
    if not obs:
        return []
    return [
        go.Scatter(
            x=[o["deg"][0] for o in obs],
            y=[o["deg"][1] for o in obs],
            mode="markers",
            name="input altloc",
            customdata=[o["text"] for o in obs],
            marker=dict(
                symbol="diamond", size=11, color="#ff5a5f", line=dict(color="white", width=1)
            ),
            hovertemplate="altloc %{customdata}<br>χ1 %{x:.0f}°, χ2 %{y:.0f}°<extra></extra>",
        )
    ]


# px from a torus point to its label's centre, in order of preference: above, below, then aside.
_TORUS_LABEL_OFFSETS = ((0, -13), (0, 13), (0, -27), (0, 27), (-40, 0), (40, 0), (-40, -20),
                        (40, 20), (-40, 20), (40, -20))  # fmt: skip


def _torus_labels(items: list[tuple]) -> list[dict]:
    """Annotations for items (text, (x, y) px of the point, colour), in priority order: each
    beside its point where it fits inside the plot area clear of those placed before it, and
    dropped where no spot does."""
    placed = place_labels(
        [
            {
                "text": text,
                "size": 10,
                "candidates": [
                    (x + dx, y + dy, "center", "middle") for dx, dy in _TORUS_LABEL_OFFSETS
                ],
            }
            for text, (x, y), _ in items
        ],
        [],
        TORUS_BOX,
    )
    notes = []
    for (text, _, colour), spot in zip(items, placed, strict=True):
        if spot is not None:
            notes.append(_paper(TORUS_W, TORUS_H, *spot, text, 10, box=TORUS_BOX, color=colour,
                                bgcolor="rgba(255,255,255,0.8)"))  # fmt: skip
    return notes


def _torus_layout(title: str, notes: list[dict]) -> dict:
    """Fixed pixel size with the plot area at TORUS_BOX (1 px per degree, so labels placed in
    pixels land where computed); both axes −180°…180° with the wells as ticks."""
    ticks = dict(
        tickmode="array",
        tickvals=[-180, -60, 0, 60, 180],
        ticktext=["−180°", "g− −60°", "0°", "g+ 60°", "t 180°"],
        range=[-180, 180],
        zeroline=False,
        showgrid=False,
        tickfont=dict(size=10),
    )
    x0, y0, x1, y1 = TORUS_BOX
    return dict(
        title=dict(
            text=title,
            x=0.0,
            xref="container",
            xanchor="left",
            y=0.985,
            yanchor="top",
            font=dict(size=14),
        ),
        meta="torus",
        annotations=notes,
        width=TORUS_W,
        height=TORUS_H,
        autosize=False,
        xaxis=dict(title=dict(text="χ1", standoff=4), **ticks),
        # −180° once, on χ1: the two axes' −180° would meet in the corner.
        yaxis=dict(
            title=dict(text="χ2", standoff=4),
            **{**ticks, "tickvals": ticks["tickvals"][1:], "ticktext": ticks["ticktext"][1:]},
        ),
        margin=dict(l=x0, r=TORUS_W - x1, t=y0, b=TORUS_H - y1),
        paper_bgcolor="white",
        legend=dict(orientation="h", yanchor="top", y=-0.14, x=0.0, font=dict(size=11)),
    )
