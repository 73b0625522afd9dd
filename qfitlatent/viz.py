"""Pictures of a prediction: py3Dmol views and plotly χ figures. Pure: no streamlit here.

The builders take plain numbers (numpy arrays, dicts of atom coordinates) and return a
`py3Dmol.view` or a `plotly.graph_objects.Figure`, so tests can inspect what would be drawn; the
functions at the end adapt a `predict.Prediction` to them.
Angles are radians in, degrees on screen. Densities come from `mixture.log_von_mises`, the
function the loss uses, so the plots show exactly what the model was trained on.
"""

import hashlib
import math

import gemmi
import numpy as np
import plotly.graph_objects as go
import py3Dmol
import torch
from plotly.subplots import make_subplots

from .mixture import log_von_mises

JS_URL = "/app/static/3Dmol-min.js"  # served by streamlit's static serving: works offline

# fmt: off
# Distinct, colour-blind-friendly hues (Okabe–Ito, then Tol's muted) for sampled conformers.
SAMPLE_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442",
                  "#882255", "#44AA99", "#999933", "#AA4499", "#332288")
# Mixture components in the χ plots: Tol's muted scheme, kept apart from the conformer colours
# above because a component and a sampled conformer are different things.
COMPONENT_COLOURS = ("#332288", "#CC6677", "#117733", "#DDCC77", "#88CCEE", "#AA4499", "#44AA99",
                     "#999933", "#882255")
# fmt: on
OBSERVED_CARBON = "#3a3a3a"  # observed altlocs: element colours with dark carbons
ELEMENT_COLOURS = {
    "C": OBSERVED_CARBON,
    "N": "#3050F8",
    "O": "#FF0D0D",
    "S": "#C8A800",
    "SE": "#C8A800",
}
CARTOON_GREY = "#cfd4da"
# Rigid → flexible, for the cartoon: a sequential blue-to-red map, light in the middle.
FLEX_STOPS = ("#2c7bb6", "#abd9e9", "#ffffbf", "#fdae61", "#d7191c")
FLEX_LEGEND = ("rigid → flexible cartoon", f"linear-gradient(90deg,{','.join(FLEX_STOPS)})")


def conformer_colour(m: int) -> str:
    return SAMPLE_COLOURS[m % len(SAMPLE_COLOURS)]


def component_colour(k: int) -> str:
    return COMPONENT_COLOURS[k % len(COMPONENT_COLOURS)]


# --- structure text for the viewer --------------------------------------------------------------


def viewer_pdb(structure: gemmi.Structure) -> str:
    """PDB text for the viewer, re-written by gemmi's minimal writer.

    Uploaded text never reaches the page verbatim: the minimal writer keeps only CRYST1, ATOM,
    HETATM, TER and END records (a `</script>` in a REMARK or TITLE is gone), and '<' or '>' in
    the fixed columns that survive (names from an mmCIF) become '_', so nothing can close the
    viewer's script tag.
    """
    text = structure.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))
    return text.replace("<", "_").replace(">", "_")


def _safe(text: str, width: int) -> str:
    """A name for a fixed PDB column: printable ASCII without '<' or '>'."""
    out = "".join(c if c.isascii() and c.isprintable() and c not in "<>" else "_" for c in text)
    return out[:width]


def atoms_pdb(
    atoms: dict[str, np.ndarray],
    resname: str,
    chain: str,
    resnum: int,
    icode: str = "",
    occ: float = 1.0,
) -> str:
    """ATOM records for one residue's atoms {name: [3] Å} (element from the name's first letter)."""
    lines = []
    for serial, (name, xyz) in enumerate(atoms.items(), start=1):
        element = "SE" if name.startswith("SE") else name[0]
        atom_col = f" {name:<3}" if len(name) < 4 else name[:4]
        x, y, z = (float(v) for v in xyz)
        lines.append(
            f"ATOM  {serial:5d} {_safe(atom_col, 4):<4} {_safe(resname, 3):>3} "
            f"{_safe(chain, 1) or 'A'}{int(resnum):4d}{_safe(icode, 1) or ' '}   "
            f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{0:6.2f}          {element:>2}"
        )
    return "\n".join(lines) + "\nEND\n"


# --- the 3D view -------------------------------------------------------------------------------


def _sel(chain: str, resnum: int, icode: str = "") -> dict:
    sel = {"chain": chain, "resi": int(resnum)}
    if icode:
        sel["icode"] = icode
    return sel


def flexibility_colour(value: float) -> str:
    """Hex colour of a flexibility value in [0, 1] on FLEX_STOPS (linear in RGB)."""
    v = min(1.0, max(0.0, float(value))) * (len(FLEX_STOPS) - 1)
    i = min(int(v), len(FLEX_STOPS) - 2)
    t = v - i
    a, b = (np.array([int(c[j : j + 2], 16) for j in (1, 3, 5)]) for c in FLEX_STOPS[i : i + 2])
    r, g, bl = (a + (b - a) * t).round().astype(int)
    return f"#{r:02x}{g:02x}{bl:02x}"


def ensemble_view(
    pdb_text: str,
    *,
    focus: tuple[str, int, str],
    sampled: list[dict] | None = None,
    observed: list[dict] | None = None,
    residue_colours: dict[tuple[str, int, str], str] | None = None,
    labels: list[tuple[tuple[str, int, str], str]] = (),
    height: int = 480,
    js_url: str = JS_URL,
) -> py3Dmol.view:
    """Cartoon of the structure with side-chain conformers drawn as sticks on chosen residues.

    Args:
        pdb_text: the whole structure, from `viewer_pdb` (never raw upload text).
        focus: (chain, resnum, icode) of the residue to zoom to.
        sampled: conformers to overlay, each {"pdb": ATOM text, "colour": hex}; thin sticks.
        observed: the input's altlocs of the shown residues, each {"pdb": ATOM text}; thicker
            sticks in element colours with dark carbons, so they read as "the data".
        residue_colours: {(chain, resnum, icode): hex} cartoon colour per residue (flexibility);
            residues not listed stay grey.
        labels: (residue id, text) labels to float next to residues.
    """
    view = py3Dmol.view(width="100%", height=height, js=js_url)
    view.addModel(pdb_text, "pdb")  # model 0: 3Dmol keeps altloc A (or blank) for the cartoon
    view.setStyle({"model": 0}, {"cartoon": {"color": CARTOON_GREY, "opacity": 0.9}})
    if residue_colours:
        by_colour: dict[tuple[str, str], list[int]] = {}
        for (chain, resnum, _icode), colour in residue_colours.items():
            by_colour.setdefault((chain, colour), []).append(int(resnum))
        for (chain, colour), resis in by_colour.items():
            view.setStyle(
                {"model": 0, "chain": chain, "resi": resis}, {"cartoon": {"color": colour}}
            )
    focus_sel = {"model": 0, **_sel(*focus)}
    # Context: side chains within 5 Å of the focus residue as thin lines.
    view.addStyle(
        {
            "model": 0,
            "within": {"distance": 5.0, "sel": focus_sel},
            "not": {"atom": ["N", "C", "O"]},
        },
        {"line": {"colorscheme": {"prop": "elem", "map": ELEMENT_COLOURS}, "opacity": 0.6}},
    )
    for conf in observed or ():
        view.addModel(conf["pdb"], "pdb")
        view.setStyle(
            {"model": -1},
            {"stick": {"radius": 0.22, "colorscheme": {"prop": "elem", "map": ELEMENT_COLOURS}}},
        )
    for conf in sampled or ():
        view.addModel(conf["pdb"], "pdb")
        view.setStyle(
            {"model": -1}, {"stick": {"radius": 0.13, "color": conf["colour"], "opacity": 0.9}}
        )
    for rid, text in labels:
        view.addLabel(
            text,
            {
                "fontSize": 12,
                "fontColor": "black",
                "backgroundColor": "white",
                "backgroundOpacity": 0.75,
                "borderThickness": 0,
                "inFront": True,
            },
            {"model": 0, **_sel(*rid), "atom": "CA"},
        )
    view.setBackgroundColor("white")
    # Frame the residue's neighbourhood, then put the residue itself in the centre.
    view.zoomTo({"model": 0, "within": {"distance": 10.0, "sel": focus_sel}})
    view.center(focus_sel)
    return view


def view_html(view: py3Dmol.view) -> str:
    """The view's HTML with its random element id replaced by a content hash.

    py3Dmol names its div after time.time(), so the HTML would differ on every rerun and the
    browser would rebuild the viewer (losing the camera) on any unrelated widget change.
    Also escapes every '<' inside the script as \\u003c. py3Dmol's own script has none, so any '<'
    there comes from data (a chain id, a label, a name from an mmCIF) inside a JSON string, where
    the escape means the same character but can never close the script tag.
    """
    html = view._make_html()
    digest = hashlib.sha1(html.replace(view.uniqueid, "").encode()).hexdigest()[:12]
    html = html.replace(view.uniqueid, digest)
    start = html.index("<script>") + len("<script>")
    end = html.rindex("</script>")
    return html[:start] + html[start:end].replace("<", "\\u003c") + html[end:]


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


def _wrap_deg(deg) -> np.ndarray:
    return (np.asarray(deg, dtype=float) + 180.0) % 360.0 - 180.0


def merge_altlocs(observed: list[dict], dims: list[int], tol_deg: float = 3.0) -> list[dict]:
    """Observed altlocs defined on every χ in `dims`, those within `tol_deg` of each other there
    merged into one mark ("A+B 0.69"), so labels of coinciding altlocs do not overprint.
    Returns [{"deg": [len(dims)] degrees, "occ": summed occupancy, "text": label}]."""
    groups: list[dict] = []
    for o in observed:
        mask = np.asarray(o["mask"])
        if not all(mask[d] for d in dims):
            continue
        deg = [float(_wrap_deg(_deg(o["chi"][d]))) for d in dims]
        for g in groups:
            if all(abs(_wrap_deg(a - b)) <= tol_deg for a, b in zip(deg, g["deg"], strict=True)):
                g["names"].append(o["altloc"] or "input")
                g["occ"] += o["occ"]
                break
        else:
            groups.append({"deg": deg, "names": [o["altloc"] or "input"], "occ": o["occ"]})
    return [
        {"deg": g["deg"], "occ": g["occ"], "text": f"{'+'.join(g['names'])} {g['occ']:.2f}"}
        for g in groups
    ]


CHI_TICKS = dict(
    tickmode="array",
    tickvals=[0, 60, 120, 180, 240, 300],
    ticktext=["0°", "g+ 60°", "120°", "t 180°", "−120°", "g− −60°"],
    tickfont=dict(size=10, color="#555"),
)


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
    n_grid: int = 360,
) -> go.Figure:
    """One polar panel per defined χ: mixture density around the circle, each component's
    weighted contribution (dotted), component means (spokes), the input's altlocs (diamonds,
    with occupancy) and sampled χ (ticks on the rim). 0° at the top, angles counter-clockwise."""
    n_chi = max(1, int(n_chi))
    grid = np.linspace(-math.pi, math.pi, n_grid, endpoint=False)
    total, per = chi_density(logits, mu, kappa, pi_symmetric, grid)
    w = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()
    theta = np.append(_deg(grid), _deg(grid[0]) + 360.0)  # closed curves
    fig = make_subplots(
        rows=1,
        cols=n_chi,
        specs=[[{"type": "polar"}] * n_chi],
        horizontal_spacing=0.07,
        subplot_titles=[
            f"χ{d + 1}" + (" (π-symmetric)" if pi_symmetric[d] else "") for d in range(n_chi)
        ],
    )
    for d in range(n_chi):
        col = d + 1
        r_max = float(total[d].max()) * 1.18
        first = d == 0
        for k in np.argsort(-w):
            if w[k] < 0.02:
                continue  # components with under 2% weight add clutter, not information
            fig.add_trace(
                go.Scatterpolar(
                    r=np.append(per[k, d], per[k, d, 0]),
                    theta=theta,
                    mode="lines",
                    line=dict(color=component_colour(int(k)), width=1, dash="dot"),
                    name=f"component {k + 1} ({w[k]:.0%})",
                    legendgroup=f"c{k}",
                    showlegend=first,
                    hovertemplate=f"component {k + 1}<br>χ{d + 1} %{{theta:.0f}}°<br>"
                    "%{r:.3f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            mean = _wrap_deg(_deg(mu[k, d]))
            means = [mean, mean + 180.0] if pi_symmetric[d] else [mean]
            for m in means:
                fig.add_trace(
                    go.Scatterpolar(
                        r=[0, r_max * 0.92],
                        theta=[m, m],
                        mode="lines",
                        line=dict(color=component_colour(int(k)), width=2),
                        legendgroup=f"c{k}",
                        showlegend=False,
                        hovertemplate=f"component {k + 1} mean {m:.0f}°, "
                        f"κ {kappa[k, d]:.1f}<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
        fig.add_trace(
            go.Scatterpolar(
                r=np.append(total[d], total[d, 0]),
                theta=theta,
                mode="lines",
                fill="toself",
                line=dict(color="#1f3b73", width=2.5),
                fillcolor="rgba(31,59,115,0.15)",
                name="predicted density",
                legendgroup="total",
                showlegend=first,
                hovertemplate=f"χ{d + 1} %{{theta:.0f}}°<br>density %{{r:.3f}} /rad<extra></extra>",
            ),
            row=1,
            col=col,
        )
        if samples is not None and len(samples):
            s = _deg(np.asarray(samples)[:, d])
            fig.add_trace(
                go.Scatterpolar(
                    r=np.full(len(s), r_max),
                    theta=s,
                    mode="markers",
                    marker=dict(symbol="line-ns-open", size=10, color="#555", line=dict(width=1.5)),
                    name="sampled χ",
                    legendgroup="samples",
                    showlegend=first,
                    hovertemplate="sample %{theta:.0f}°<extra></extra>",
                ),
                row=1,
                col=col,
            )
        obs = merge_altlocs(observed, [d])
        if obs:
            # Label a mark only when no labelled mark sits within 25°; the rest say it on hover.
            shown: list[float] = []
            labels = []
            for o in obs:
                free = all(abs(_wrap_deg(o["deg"][0] - a)) >= 25.0 for a in shown)
                labels.append(o["text"] if free else "")
                shown += [o["deg"][0]] if free else []
            fig.add_trace(
                go.Scatterpolar(
                    r=[r_max] * len(obs),
                    theta=[o["deg"][0] for o in obs],
                    mode="markers+text",
                    text=labels,
                    customdata=[o["text"] for o in obs],
                    textposition="top center",
                    textfont=dict(size=10, color="#111"),
                    marker=dict(
                        symbol="diamond",
                        size=[8 + 8 * o["occ"] for o in obs],  # area follows occupancy
                        color="#111",
                        line=dict(color="white", width=1),
                    ),
                    name="observed altloc (occupancy)",
                    legendgroup="obs",
                    showlegend=first,
                    hovertemplate="altloc %{customdata}<br>χ %{theta:.0f}°<extra></extra>",
                ),
                row=1,
                col=col,
            )
    polar = dict(
        angularaxis=dict(
            rotation=90,
            direction="counterclockwise",
            thetaunit="degrees",
            gridcolor="#e5e5e5",
            **CHI_TICKS,
        ),
        radialaxis=dict(showticklabels=False, ticks="", gridcolor="#eeeeee", rangemode="tozero"),
        bgcolor="white",
    )
    for note in fig.layout.annotations:  # subplot titles clear of the 0° tick label
        note.update(yshift=22, font=dict(size=13))
    fig.update_layout(
        {f"polar{d + 1 if d else ''}": polar for d in range(n_chi)},
        title=dict(text=title, x=0.0, font=dict(size=15)),
        height=360,
        margin=dict(l=40, r=40, t=80, b=30),
        paper_bgcolor="white",
        legend=dict(orientation="h", yanchor="top", y=-0.05, x=0.0, font=dict(size=11)),
    )
    return fig


def torus_figure(
    logits,
    mu,
    kappa,
    pi_symmetric,
    *,
    observed: list[dict] = (),
    samples=None,
    title: str = "",
    n_grid: int = 90,
) -> go.Figure:
    """χ1–χ2 joint density as a heat map on the torus (−180°…180° both ways)."""
    grid = np.linspace(-math.pi, math.pi, n_grid, endpoint=False) + math.pi / n_grid
    dens = joint_density(logits, mu, kappa, pi_symmetric, grid)  # [G, G]
    deg = _deg(grid)
    fig = go.Figure(
        go.Heatmap(
            x=deg,
            y=deg,
            z=dens,
            colorscale="Viridis",
            colorbar=dict(title="density"),
            hovertemplate="χ1 %{x:.0f}°<br>χ2 %{y:.0f}°<br>%{z:.3f}<extra></extra>",
        )
    )
    if samples is not None and len(samples):
        s = np.asarray(samples)
        fig.add_trace(
            go.Scatter(
                x=_deg(s[:, 0]),
                y=_deg(s[:, 1]),
                mode="markers",
                name="sampled",
                marker=dict(symbol="x", size=8, color="white", line=dict(color="#222", width=1)),
            )
        )
    obs = merge_altlocs(observed, [0, 1])
    if obs:
        fig.add_trace(
            go.Scatter(
                x=[o["deg"][0] for o in obs],
                y=[o["deg"][1] for o in obs],
                mode="markers+text",
                text=[o["text"] for o in obs],
                textposition="top center",
                textfont=dict(color="white"),
                name="observed altloc",
                marker=dict(
                    symbol="diamond", size=11, color="#ff5a5f", line=dict(color="white", width=1)
                ),
            )
        )
    ticks = dict(
        tickmode="array",
        tickvals=[-180, -120, -60, 0, 60, 120, 180],
        ticktext=["−180°", "−120°", "g− −60°", "0°", "g+ 60°", "120°", "t 180°"],
        range=[-180, 180],
        zeroline=False,
    )
    fig.update_layout(
        title=dict(text=title, x=0.0, font=dict(size=15)),
        height=450,
        xaxis=dict(title="χ1", **ticks),
        yaxis=dict(title="χ2", scaleanchor="x", **ticks),
        margin=dict(l=60, r=20, t=50, b=90),
        paper_bgcolor="white",
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0.0),
    )
    return fig


def flexibility_profile(
    labels: list[str],
    score: np.ndarray,
    n_obs: np.ndarray,
    selected: int | None = None,
    split: np.ndarray | None = None,
) -> go.Figure:
    """Predicted flexibility (a probability, 0–1) along the sequence; residues the input models
    with altlocs marked, and (`split`, bool) the residues the multiconformer model splits."""
    x = np.arange(len(labels))
    fig = go.Figure(
        go.Bar(
            x=x,
            y=score,
            marker_color=[flexibility_colour(v) for v in np.clip(score, 0.0, 1.0)],
            customdata=labels,
            name="predicted flexibility",
            hovertemplate="%{customdata}<br>flexibility %{y:.2f}<extra></extra>",
        )
    )
    if split is not None and np.any(split):
        idx = np.flatnonzero(split)
        fig.add_trace(
            go.Scatter(
                x=idx,
                y=np.full(idx.size, -0.04),
                mode="markers",
                name="split in multiconformer.pdb",
                marker=dict(symbol="square", size=5, color="#1f3b73"),
                customdata=[labels[i] for i in idx],
                hovertemplate="%{customdata}: split<extra></extra>",
            )
        )
    multi = np.flatnonzero(np.asarray(n_obs) >= 2)
    if multi.size:
        top = 1.0
        fig.add_trace(
            go.Scatter(
                x=multi,
                y=np.full(multi.size, top * 1.08),
                mode="markers",
                name="altlocs in the input",
                marker=dict(symbol="triangle-down", size=7, color="#111"),
                customdata=[labels[i] for i in multi],
                hovertemplate="%{customdata}: altlocs<extra></extra>",
            )
        )
    if selected is not None:
        fig.add_vline(x=selected, line=dict(color="#111", width=1.5, dash="dot"))
        fig.add_annotation(
            x=selected,
            y=1.0,
            yref="paper",
            yanchor="bottom",
            text=labels[selected],
            showarrow=False,
            font=dict(size=11, color="#111"),
            bgcolor="white",
        )
    step = max(1, len(labels) // 20)
    fig.update_layout(
        height=260,
        margin=dict(l=50, r=10, t=50, b=40),
        bargap=0.1,
        paper_bgcolor="white",
        plot_bgcolor="white",
        showlegend=False,
        xaxis=dict(tickmode="array", tickvals=x[::step], ticktext=labels[::step], tickangle=-45),
        yaxis=dict(title="flexibility (p ≥ 2 conformers)", gridcolor="#eee", range=[-0.08, 1.15]),
    )
    return fig


def legend_html(items: list[tuple[str, str]]) -> str:
    """Small coloured chips (label, hex) for the viewer legend; labels are escaped."""
    import html

    chips = "".join(
        f'<span style="display:inline-block;margin:0 10px 2px 0;white-space:nowrap">'
        f'<span style="display:inline-block;width:12px;height:12px;border-radius:2px;'
        f'background:{c};vertical-align:-1px;margin-right:4px"></span>{html.escape(t)}</span>'
        for t, c in items
    )
    return f'<div style="font-size:0.85rem;line-height:1.6">{chips}</div>'


# --- from a Prediction (predict.Prediction) to the pictures above --------------------------------


def residue_id(pred, i: int) -> tuple[str, int, str]:
    f = pred.features
    return f.chain_id[i], int(f.resnum[i]), f.icode[i]


def residue_label(pred, i: int) -> str:
    """ "A99 SER" style label (chain, number, insertion code, name)."""
    chain, resnum, icode = residue_id(pred, i)
    return f"{chain}{resnum}{icode} {pred.features.resname[i]}"


def observed_altlocs(pred, i: int) -> list[dict]:
    """The input's side-chain conformers of residue i: χ [D] rad, mask [D], occupancy, altloc."""
    f, rec = pred.features, pred.parsed.residues[i]
    return [
        {
            "chi": f.chi[i, a].numpy(),
            "mask": f.chi_mask[i, a].numpy(),
            "occ": float(f.occ[i, a]),
            "altloc": conf.altloc,
        }
        for a, conf in enumerate(rec.conformers)
    ]


def _mixture_arrays(pred, i: int):
    mix = pred.mixture.index(i)
    return (
        mix.logits.numpy(),
        mix.mu.numpy(),
        mix.kappa.numpy(),
        pred.features.pi_symmetric[i].numpy(),
    )


def residue_figures(pred, i: int) -> tuple[go.Figure | None, go.Figure | None]:
    """(χ circle figure, χ1–χ2 torus or None) for residue i; (None, None) without χ."""
    n_chi = int(pred.features.chi_defined[i].sum())
    if n_chi == 0:
        return None, None
    logits, mu, kappa, sym = _mixture_arrays(pred, i)
    observed = observed_altlocs(pred, i)
    samples = pred.samples[:, i].numpy()  # [S, D]
    label = residue_label(pred, i)
    circle = chi_circle_figure(
        logits,
        mu,
        kappa,
        n_chi,
        sym,
        observed=observed,
        samples=samples,
        title=f"{label}: predicted χ densities",
    )
    torus = None
    if n_chi >= 2:
        torus = torus_figure(
            logits,
            mu,
            kappa,
            sym,
            observed=observed,
            samples=samples,
            title=f"{label}: χ1–χ2 joint density",
        )
    return circle, torus


def _side_chain(atoms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CA and the side chain: what a stick overlay needs to join the cartoon."""
    return {k: v for k, v in atoms.items() if k not in ("N", "C", "O", "OXT")}


def structure_view(
    pred,
    viewer_text: str,
    i: int,
    *,
    also: list[int] = (),
    colour_by_flexibility: bool = False,
    show_observed: bool = True,
    height: int = 480,
    js_url: str = JS_URL,
) -> tuple[py3Dmol.view, list[tuple[str, str]]]:
    """The 3D view of residue i (and residues `also`) with sampled and observed conformers.

    Returns the view and legend items (label, colour) for the selected residue's conformers.
    """
    from .predict import residue_proposals

    shown = [i, *[j for j in also if j != i]]
    sampled, observed, legend = [], [], []
    for j in shown:
        chain, resnum, icode = residue_id(pred, j)
        resname = pred.features.resname[j]
        for m, (label, occ, atoms, written) in enumerate(residue_proposals(pred, j)):
            colour = conformer_colour(m)
            text = atoms_pdb(_side_chain(atoms), resname, chain, resnum, icode, occ)
            sampled.append({"pdb": text, "colour": colour})
            if j == i:
                what = f"written {label}" if written else f"proposed {label} (not written)"
                legend.append((f"{what} · {occ:.0%}", colour))
        if show_observed:
            for conf in pred.parsed.residues[j].conformers:
                observed.append(
                    {
                        "pdb": atoms_pdb(
                            _side_chain(conf.atoms), resname, chain, resnum, icode, conf.occ
                        )
                    }
                )
    if show_observed:
        n_obs = pred.parsed.residues[i].n_obs
        legend.append(
            (
                f"input side chain{'s' if n_obs > 1 else ''} ({n_obs} altloc"
                f"{'s' if n_obs > 1 else ''})",
                OBSERVED_CARBON,
            )
        )
    colours = None
    if colour_by_flexibility:  # the flexibility score is a probability: an absolute scale
        idx = [r["index"] for r in pred.table]
        scaled = np.clip(pred.flexibility[idx].numpy(), 0.0, 1.0)
        colours = {
            residue_id(pred, j): flexibility_colour(v) for j, v in zip(idx, scaled, strict=True)
        }
    labels = [(residue_id(pred, j), residue_label(pred, j)) for j in shown]
    view = ensemble_view(
        viewer_text,
        focus=residue_id(pred, i),
        sampled=sampled,
        observed=observed,
        residue_colours=colours,
        labels=labels,
        height=height,
        js_url=js_url,
    )
    return view, legend


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


def profile_figure(pred, i: int) -> go.Figure:
    """`flexibility_profile` of a prediction in sequence order, residue i marked."""
    order = sorted(r["index"] for r in pred.table)  # residues with χ, in file order
    return flexibility_profile(
        [residue_label(pred, j) for j in order],
        pred.flexibility[order].numpy(),
        pred.features.n_obs[order].numpy(),
        selected=order.index(i) if i in order else None,
        split=np.array([j in pred.multiconformer.conformers for j in order]),
    )
