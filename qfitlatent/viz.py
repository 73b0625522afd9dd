"""Pictures of a prediction: py3Dmol views and plotly χ figures. Pure: no streamlit here.

The builders take plain numbers (numpy arrays, dicts of atom coordinates) and return a
`py3Dmol.view` or a `plotly.graph_objects.Figure`, so tests can inspect what would be drawn; the
functions at the end adapt a `predict.Prediction` to them.
Angles are radians in, degrees on screen. Densities come from `mixture.log_von_mises`, the
function the loss uses, so the plots show exactly what the model was trained on.
"""

import hashlib
import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PdbIndex:
    """Viewer PDB text split per atom line, with coordinates, to cut a neighbourhood out fast."""

    lines: list[str]  # [M] ATOM/HETATM records
    xyz: np.ndarray  # [M, 3] Å
    residue: np.ndarray  # [M] int, index into keys
    keys: list[tuple[str, int, str]]  # (chain, resnum, icode) per residue, file order


def pdb_index(text: str) -> PdbIndex:
    """Index the ATOM/HETATM records of `viewer_pdb` text (chain in columns 21–22, as gemmi
    writes it)."""
    lines, xyz, residue, keys, seen = [], [], [], [], {}
    for line in text.splitlines():
        if not line.startswith(("ATOM", "HETATM")):
            continue
        key = (line[20:22].strip(), int(line[22:26]), line[26].strip())
        if key not in seen:
            seen[key] = len(keys)
            keys.append(key)
        lines.append(line)
        xyz.append((float(line[30:38]), float(line[38:46]), float(line[46:54])))
        residue.append(seen[key])
    return PdbIndex(lines, np.asarray(xyz, dtype=np.float32).reshape(-1, 3),
                    np.asarray(residue, dtype=np.int64), keys)  # fmt: skip


def neighbourhood_pdb(index: PdbIndex, focus: tuple[str, int, str], radius: float) -> str:
    """PDB text of the residues with an atom within `radius` Å of the focus residue's atoms.

    The viewer then parses a few hundred atoms instead of a whole structure: on a structure of
    thousands of residues this is what keeps a change of residue quick in the browser.
    """
    try:
        r = index.keys.index(focus)
    except ValueError:  # not in the text (should not happen): draw everything
        return "\n".join(index.lines) + "\nEND\n"
    centre = index.xyz[index.residue == r]  # [F, 3]
    lo, hi = centre.min(0) - radius, centre.max(0) + radius
    box = np.flatnonzero(((index.xyz >= lo) & (index.xyz <= hi)).all(1))  # cheap prefilter
    d2 = ((index.xyz[box, None, :] - centre[None]) ** 2).sum(-1).min(1)  # [B]
    near = np.unique(index.residue[box[d2 <= radius * radius]])
    keep = np.isin(index.residue, near)
    return "\n".join(line for line, k in zip(index.lines, keep, strict=True) if k) + "\nEND\n"


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


def flexibility_scale(values: np.ndarray) -> np.ndarray:
    """Values → [0, 1] by rank-robust limits (5th–95th percentile), for colouring."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return values
    lo, hi = np.percentile(values, [5, 95])
    return np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)


NEIGHBOURHOOD_A = 10.0  # Å around the residue drawn in full and framed by the camera
CARTOON_A = 14.0  # Å: residues this close keep their cartoon when the rest is switched off
# Sampled conformers: a sequential green by occupancy (light = rare, dark = dominant), a hue
# the blue–red flexibility cartoon and the element-coloured altlocs do not use.
OCC_STOPS = ("#b8e3b1", "#74c476", "#2f9e55", "#006d2c", "#00391a")


def occupancy_colour(occ: float) -> str:
    """Hex colour of an occupancy in [0, 1] on OCC_STOPS (linear in RGB)."""
    v = min(1.0, max(0.0, float(occ))) * (len(OCC_STOPS) - 1)
    i = min(int(v), len(OCC_STOPS) - 2)
    a, b = (np.array([int(c[j : j + 2], 16) for j in (1, 3, 5)]) for c in OCC_STOPS[i : i + 2])
    r, g, bl = (a + (b - a) * (v - i)).round().astype(int)
    return f"#{r:02x}{g:02x}{bl:02x}"


def ensemble_view(
    pdb_text: str,
    *,
    focus: tuple[str, int, str],
    sampled: list[dict] | None = None,
    observed: list[dict] | None = None,
    residue_colours: dict[tuple[str, int, str], str] | None = None,
    labels: list[tuple[tuple[str, int, str], str]] = (),
    whole: bool = False,
    height: int = 480,
    js_url: str = JS_URL,
) -> py3Dmol.view:
    """The residue in its neighbourhood: cartoon and side chains within about 10 Å drawn in
    full, sampled and observed conformers as sticks, the camera on the residue.

    Args:
        pdb_text: the whole structure, from `viewer_pdb` (never raw upload text).
        focus: (chain, resnum, icode) of the residue to zoom to.
        sampled: conformers to overlay, each {"pdb": ATOM text, "colour": hex}; thin sticks.
        observed: the input's altlocs of the shown residues, each {"pdb": ATOM text}; thicker
            sticks in element colours with dark carbons, so they read as "the data".
        residue_colours: {(chain, resnum, icode): hex} cartoon colour per residue (flexibility);
            residues not listed stay grey.
        labels: (residue id, text) labels to float next to residues.
        whole: also draw the cartoon of everything farther than CARTOON_A, faded. Off by
            default: on a large structure other chains' cartoon buries the residue.
    """
    view = py3Dmol.view(width="100%", height=height, js=js_url)
    view.addModel(pdb_text, "pdb")  # model 0: 3Dmol keeps altloc A (or blank) for the cartoon
    focus_sel = {"model": 0, **_sel(*focus)}
    near = {"model": 0, "byres": True, "within": {"distance": CARTOON_A, "sel": focus_sel}}
    if whole:  # one opacity per model in 3Dmol, so the whole cartoon is faded alike
        view.setStyle({"model": 0}, {"cartoon": {"color": CARTOON_GREY, "opacity": 0.55}})
    else:
        view.setStyle({"model": 0}, {})
        view.setStyle(near, {"cartoon": {"color": CARTOON_GREY}})
    if residue_colours:
        by_colour: dict[tuple[str, str], list[int]] = {}
        for (chain, resnum, _icode), colour in residue_colours.items():
            by_colour.setdefault((chain, colour), []).append(int(resnum))
        for (chain, colour), resis in by_colour.items():
            sel = {"model": 0, "chain": chain, "resi": resis}
            if not whole:
                sel = {**sel, "byres": True, "within": near["within"]}
            view.setStyle(sel, {"cartoon": {"color": colour}})
    # The neighbourhood in full: every residue with an atom within 6 Å of the focus residue
    # as thin lines (side chains and backbone), so contacts read without rotating.
    view.addStyle(
        {"model": 0, "byres": True, "within": {"distance": 6.0, "sel": focus_sel}},
        {"line": {"colorscheme": {"prop": "elem", "map": ELEMENT_COLOURS}, "opacity": 0.8}},
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
            {"model": -1}, {"stick": {"radius": 0.13, "color": conf["colour"], "opacity": 0.95}}
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
    view.zoomTo({"model": 0, "within": {"distance": NEIGHBOURHOOD_A, "sel": focus_sel}})
    view.center(focus_sel)
    return view


# Runs after py3Dmol's own script (same promise, later callback). Exposes the viewer to tests
# (window.qfitViewer) and keeps the camera's rotation across residues of one structure: a
# rotation the user made is stored per structure in sessionStorage and re-applied around the
# newly centred residue, so moving through the table does not undo the user's view.
CAMERA_JS = """<script>
$3Dmolpromise.then(function() {
  var v = viewer_ID, key = "qfitlatent-camera:KEY";
  window.qfitViewer = v;
  var saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) {}
  if (saved && saved.length >= 8) {
    var now = v.getView();
    [4, 5, 6, 7].forEach(function(i) { now[i] = saved[i]; });
    v.setView(now);
    v.render();
  }
  var save = function() {
    try { sessionStorage.setItem(key, JSON.stringify(v.getView())); } catch (e) {}
  };
  var el = document.getElementById("3dmolviewer_ID");
  ["mouseup", "touchend"].forEach(function(t) {
    el.addEventListener(t, function() { setTimeout(save, 30); });
  });
  window.qfitReady = true;
});
</script>"""


def view_html(view: py3Dmol.view, camera_key: str = "") -> str:
    """The view's HTML with its random element id replaced by a content hash.

    py3Dmol names its div after time.time(), so the HTML would differ on every rerun and the
    browser would rebuild the viewer (losing the camera) on any unrelated widget change.
    Also escapes every '<' inside the script as \\u003c. py3Dmol's own script has none, so any '<'
    there comes from data (a chain id, a label, a name from an mmCIF) inside a JSON string, where
    the escape means the same character but can never close the script tag.
    `camera_key` (a structure id) turns on CAMERA_JS: the user's rotation is kept between views
    of the same structure.
    """
    html = view._make_html()
    digest = hashlib.sha1(html.replace(view.uniqueid, "").encode()).hexdigest()[:12]
    html = html.replace(view.uniqueid, digest)
    start = html.index("<script>") + len("<script>")
    end = html.rindex("</script>")
    html = html[:start] + html[start:end].replace("<", "\\u003c") + html[end:]
    if camera_key:
        key = "".join(c for c in camera_key if c.isalnum())[:40]
        html += CAMERA_JS.replace("viewer_ID", f"viewer_{digest}").replace(
            "3dmolviewer_ID", f"3dmolviewer_{digest}").replace("KEY", key)  # fmt: skip
    return html


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


# --- names a crystallographer uses ---------------------------------------------------------------

# χ that end in a planar group (and ARG's χ4) have no g+/t/g− wells; rotamer libraries (Lovell
# et al. 2000, "mt−30") name them by the angle rounded to 10°. Index d of that χ per residue.
NUMERIC_CHI = {"ASN": 1, "ASP": 1, "HIS": 1, "PHE": 1, "TYR": 1, "TRP": 1, "GLN": 2, "GLU": 2,
               "ARG": 3}  # fmt: skip
# A component under this weight is noise for a reader; it still counts in the density.
MIN_COMPONENT_WEIGHT = 0.05
MAX_COMPONENTS_SHOWN = 8
COMPONENT_CAPTION = (
    "A component is one rotamer the model proposes (one peak on every χ); its % is the share of "
    "conformations it accounts for. Names: p, t, m = χ near +60° (g+), 180° (t), −60° (g−); "
    "planar end groups by their angle. Radius: probability density per radian."
)


def chi_well(deg: float) -> str:
    """p (g+, 0…120°), t (120…240°) or m (g−, −120…0°) for an sp3 χ in degrees."""
    x = float(_wrap_deg(deg))
    return "p" if 0.0 <= x < 120.0 else ("m" if -120.0 <= x < 0.0 else "t")


def rotamer_name(resname: str, chi_deg, pi_symmetric=(False,) * 4) -> str:
    """Rotamer-library name of a χ tuple in degrees: "mt", "mt−80", "p90" (π-symmetric χ folded
    to −90…90°, as its two orientations are one structure)."""
    parts = []
    for d, x in enumerate(chi_deg):
        if NUMERIC_CHI.get(resname) == d:
            x = float(_wrap_deg(x))
            if pi_symmetric[d]:
                x = (x + 90.0) % 180.0 - 90.0
            tens = int(math.copysign(math.floor(abs(x) / 10.0 + 0.5), x))  # half away from 0
            parts.append(f"{tens * 10}".replace("-", "−"))
        else:
            parts.append(chi_well(x))
    return "".join(parts)


def component_names(resname, mu_deg, weights, pi_symmetric, n_chi) -> dict[int, str]:
    """{component: "mt−80 · 41%"} for the components worth showing, heaviest first; a name two
    components share gets a counter ("mt (2) · 12%")."""
    keep = [int(k) for k in np.argsort(-weights) if weights[k] >= MIN_COMPONENT_WEIGHT]
    keep = keep[:MAX_COMPONENTS_SHOWN]
    seen: dict[str, int] = {}
    out = {}
    for k in keep:
        base = rotamer_name(resname, mu_deg[k, :n_chi], pi_symmetric) if n_chi else "—"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base} ({seen[base]})"
        out[k] = f"{name} · {weights[k]:.0%}"
    return out


# --- text placement in pixels ---------------------------------------------------------------------
# Figures whose labels must never collide have a fixed pixel size, so a label's box is known
# here (estimated from its length) and a greedy placer can keep every label clear of the others.

CHAR_W = 0.62  # average glyph width / font size for the sans-serif plotly uses (a safe upper side)


def text_box(x, y, text, size, xanchor="center", yanchor="middle") -> tuple:
    """(x0, y0, x1, y1) in pixels, y down, of one line of `text` anchored at (x, y)."""
    w, h = len(text) * CHAR_W * size + 4, size * 1.3 + 2
    x0 = x - w / 2 if xanchor == "center" else (x - w if xanchor == "right" else x)
    y0 = y - h / 2 if yanchor == "middle" else (y - h if yanchor == "bottom" else y)
    return (x0, y0, x0 + w, y0 + h)


def boxes_overlap(a, b, pad=1.0) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _inside(box, bounds) -> bool:
    x0, y0, x1, y1 = bounds
    return box[0] >= x0 and box[1] >= y0 and box[2] <= x1 and box[3] <= y1


def place_labels(items, taken, bounds) -> list:
    """Greedy placement: each item {"text", "size", "candidates": [(x, y, xanchor, yanchor)]}
    gets the first candidate whose box is inside `bounds` and clear of `taken` (which grows).
    Returns the chosen (x, y, xanchor, yanchor) per item, None where no candidate was free."""
    out = []
    for item in items:
        chosen = None
        for x, y, xa, ya in item["candidates"]:
            box = text_box(x, y, item["text"], item["size"], xa, ya)
            if _inside(box, bounds) and not any(boxes_overlap(box, t) for t in taken):
                chosen = (x, y, xa, ya)
                taken.append(box)
                break
        out.append(chosen)
    return out


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
    n_grid: int = 360,
) -> go.Figure:
    """One polar panel per defined χ: mixture density around the circle (radial scale in
    density per radian), the components that carry weight (dotted, named by rotamer, with their
    mean as a spoke), the input's altlocs (diamonds on the rim, letters inside, occupancies
    under the panel) and sampled χ (ticks on the rim). 0° at the top, counter-clockwise.

    The figure has a fixed pixel size (show it with width="content") so every label is placed
    in pixels, clear of every other: nothing overlaps and nothing leaves the figure.
    """
    n_chi = max(1, int(n_chi))
    grid = np.linspace(-math.pi, math.pi, n_grid, endpoint=False)
    total, per = chi_density(logits, mu, kappa, pi_symmetric, grid)
    w = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()
    names = component_names(resname, _deg(mu), w, pi_symmetric, n_chi)
    theta = np.append(_deg(grid), _deg(grid[0]) + 360.0)  # closed curves
    fig_w, fig_h = 2 * PAD + PANEL_W * n_chi + LEGEND_W, CIRCLE_H
    cy = TITLE_H + 20 + 22 + CIRCLE_R  # title, panel title, room for the top tick label
    fig = go.Figure()
    notes = []
    if title:
        notes.append(_paper(fig_w, fig_h, PAD, 4, "left", "top", f"<b>{title}</b>", 14,
                            color="#111"))  # fmt: skip
    for d in range(n_chi):
        polar = "polar" if d == 0 else f"polar{d + 1}"
        cx = PAD + PANEL_W * (d + 0.5)
        r_max = float(total[d].max()) * 1.18
        first = d == 0
        for k, name in names.items():
            fig.add_trace(
                go.Scatterpolar(
                    r=np.append(per[k, d], per[k, d, 0]),
                    theta=theta,
                    mode="lines",
                    line=dict(color=component_colour(k), width=1, dash="dot"),
                    name=name,
                    legendgroup=f"c{k}",
                    showlegend=first,
                    subplot=polar,
                    hovertemplate=f"{name}<br>χ{d + 1} %{{theta:.0f}}°<br>"
                    "%{r:.3f} /rad<extra></extra>",
                )
            )
            mean = float(_wrap_deg(_deg(mu[k, d])))
            for m in [mean, mean + 180.0] if pi_symmetric[d] else [mean]:
                fig.add_trace(
                    go.Scatterpolar(
                        r=[0, r_max * 0.92],
                        theta=[m, m],
                        mode="lines",
                        line=dict(color=component_colour(k), width=2),
                        legendgroup=f"c{k}",
                        showlegend=False,
                        subplot=polar,
                        hovertemplate=f"{name}: mean {float(_wrap_deg(m)):.0f}°, "
                        f"κ {kappa[k, d]:.1f}<extra></extra>",
                    )
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
                subplot=polar,
                hovertemplate=f"χ{d + 1} %{{theta:.0f}}°<br>density %{{r:.3f}} /rad<extra></extra>",
            )
        )
        if samples is not None and len(samples):
            fig.add_trace(
                go.Scatterpolar(
                    r=np.full(len(samples), r_max),
                    theta=_deg(np.asarray(samples)[:, d]),
                    mode="markers",
                    marker=dict(symbol="line-ns-open", size=10, color="#555", line=dict(width=1.5)),
                    name="sampled χ",
                    legendgroup="samples",
                    showlegend=first,
                    subplot=polar,
                    hovertemplate="sample %{theta:.0f}°<extra></extra>",
                )
            )
        obs = merge_altlocs(observed, [d])
        if obs:
            fig.add_trace(
                go.Scatterpolar(
                    r=[r_max] * len(obs),
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
                    showlegend=first,
                    subplot=polar,
                    hovertemplate="altloc %{customdata}<br>χ %{theta:.0f}°<extra></extra>",
                )
            )
        # Labels, all in pixels: panel title, well ticks outside the rim, the radial scale on
        # its grid circle, altloc letters inside the rim, occupancies under the panel.
        bounds = (cx - PANEL_W / 2 + 2, TITLE_H, cx + PANEL_W / 2 - 2, fig_h - 2)
        taken: list[tuple] = []
        atoms = "–".join(chi_atoms[d]) if d < len(chi_atoms) else ""
        head = f"χ{d + 1}" + (f" · {atoms}" if atoms else "")
        head += " (π-symmetric)" if pi_symmetric[d] else ""
        ty = TITLE_H + 2
        taken.append(text_box(cx, ty, head, 12, "center", "top"))
        notes.append(_paper(fig_w, fig_h, cx, ty, "center", "top", head, 12, color="#111"))
        for angle, text in CHI_TICKS:
            xa, ya = _outward_anchor(angle)
            x, y = _polar_xy(cx, cy, CIRCLE_R + 5, angle)
            taken.append(text_box(x, y, text, 10, xa, ya))
            notes.append(_paper(fig_w, fig_h, x, y, xa, ya, text, 10, color="#555"))
        scale = _nice(float(total[d].max()) * 0.6)
        gaps = [a for a in (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)]
        obs_deg = [o["deg"][0] for o in obs]
        scale_angle = max(gaps, key=lambda a: min([abs(_wrap_deg(a - b)) for b in obs_deg] or [0]))
        sx, sy = _polar_xy(cx, cy, CIRCLE_R * scale / r_max, scale_angle)
        scale_text = f"{_fmt_num(scale)}/rad"
        taken.append(text_box(sx, sy, scale_text, 9))
        notes.append(_paper(fig_w, fig_h, sx, sy, "center", "middle", scale_text, 9,
                            color="#777", bgcolor="rgba(255,255,255,0.85)"))  # fmt: skip
        letters = [o["text"].rsplit(" ", 1)[0] for o in obs]
        items = [
            {
                "text": t,
                "size": 10,
                "candidates": [
                    (*_polar_xy(cx, cy, CIRCLE_R * f, o["deg"][0] + da), "center", "middle")
                    for f in (0.8, 0.62, 0.44, 0.28) for da in (0.0, 12.0, -12.0)
                ],
            }
            for t, o in zip(letters, obs, strict=True)
        ]
        for item, spot in zip(items, place_labels(items, taken, bounds), strict=True):
            if spot is not None:
                notes.append(_paper(fig_w, fig_h, *spot, item["text"], 10, color="#111",
                                    bgcolor="rgba(255,255,255,0.7)"))  # fmt: skip
        # Occupancies under the panel, as many per line as fit.
        lines, line = [], ""
        for o in obs:
            part = o["text"] if not line else f"{line} · {o['text']}"
            if line and len(part) * CHAR_W * 10 > PANEL_W - 12:
                lines.append(line)
                part = o["text"]
            line = part
        lines += [line] if line else []
        y = cy + CIRCLE_R + 26
        for text in (["input altlocs (occupancy):", *lines] if lines else []):
            notes.append(_paper(fig_w, fig_h, cx, y, "center", "top", text, 10, color="#333"))
            y += 15  # one text_box height at size 10
        fig.update_layout(
            {
                polar: dict(
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
                        range=[0, r_max],
                        tickmode="array",
                        tickvals=[scale],
                        showticklabels=False,
                        ticks="",
                        gridcolor="#d9d9d9",
                        showline=False,
                    ),
                    bgcolor="white",
                )
            }
        )
    fig.update_layout(
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
    return fig


TORUS_W, TORUS_H = 520, 500
TORUS_BOX = (60, 40, 420, 400)  # plot area in px (x0, y0, x1, y1): 1 px per degree, square


def _torus_xy(chi1: float, chi2: float) -> tuple[float, float]:
    x0, y0, _, _ = TORUS_BOX
    return x0 + float(_wrap_deg(chi1)) + 180.0, y0 + 180.0 - float(_wrap_deg(chi2))


def torus_figure(
    logits,
    mu,
    kappa,
    pi_symmetric,
    *,
    observed: list[dict] = (),
    samples=None,
    title: str = "",
    resname: str = "",
    n_chi: int = 2,
    n_grid: int = 90,
) -> go.Figure:
    """χ1–χ2 joint density as a heat map on the torus (−180°…180° both ways), with the same
    vocabulary as the circle plots: wells on the axes, components named by rotamer at their
    means, input altlocs by letter. Fixed pixel size, labels placed clear of each other."""
    grid = np.linspace(-math.pi, math.pi, n_grid, endpoint=False) + math.pi / n_grid
    dens = joint_density(logits, mu, kappa, pi_symmetric, grid)  # [G, G]
    deg = _deg(grid)
    w = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()
    names = component_names(resname, _deg(mu), w, pi_symmetric, n_chi)
    fig = go.Figure(
        go.Heatmap(
            x=deg,
            y=deg,
            z=dens,
            colorscale="Viridis",
            colorbar=dict(title=dict(text="density (/rad²)", side="right", font=dict(size=11)),
                          thickness=14,
                          x=1.0, xanchor="left", xref="paper"),  # fmt: skip
            hovertemplate="χ1 %{x:.0f}°<br>χ2 %{y:.0f}°<br>%{z:.3f} /rad²<extra></extra>",
            showlegend=False,
        )
    )
    if samples is not None and len(samples):
        s = np.asarray(samples)
        fig.add_trace(
            go.Scatter(
                x=_deg(s[:, 0]),
                y=_deg(s[:, 1]),
                mode="markers",
                name="sampled χ",
                marker=dict(symbol="x", size=8, color="white", line=dict(color="#222", width=1)),
                hovertemplate="sample χ1 %{x:.0f}°, χ2 %{y:.0f}°<extra></extra>",
            )
        )
    items, notes = [], []
    if names:
        ks = list(names)
        fig.add_trace(
            go.Scatter(
                x=[float(_wrap_deg(_deg(mu[k, 0]))) for k in ks],
                y=[float(_wrap_deg(_deg(mu[k, 1]))) for k in ks],
                mode="markers",
                name="component mean",
                customdata=[names[k] for k in ks],
                marker=dict(symbol="cross", size=10, color=[component_colour(k) for k in ks],
                            line=dict(color="white", width=1)),  # fmt: skip
                hovertemplate="%{customdata}<br>χ1 %{x:.0f}°, χ2 %{y:.0f}°<extra></extra>",
            )
        )
        for k in ks:
            items.append((names[k], _torus_xy(_deg(mu[k, 0]), _deg(mu[k, 1])), "#111"))
    obs = merge_altlocs(observed, [0, 1])
    if obs:
        fig.add_trace(
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
        )
        # Altloc labels first: they are the data, so they get the best spots.
        items = [(o["text"], _torus_xy(*o["deg"]), "#b00020") for o in obs] + items
    placed = place_labels(
        [
            {
                "text": text,
                "size": 10,
                "candidates": [
                    (x + dx, y + dy, "center", "middle")
                    for dx, dy in ((0, -13), (0, 13), (0, -27), (0, 27), (-40, 0), (40, 0),
                                   (-40, -20), (40, 20), (-40, 20), (40, -20))
                ],
            }
            for text, (x, y), _ in items
        ],
        [],
        TORUS_BOX,
    )
    for (text, _, colour), spot in zip(items, placed, strict=True):
        if spot is not None:
            notes.append(_paper(TORUS_W, TORUS_H, *spot, text, 10, box=TORUS_BOX, color=colour,
                                bgcolor="rgba(255,255,255,0.8)"))  # fmt: skip
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
    fig.update_layout(
        title=dict(text=title, x=0.0, xref="container", xanchor="left", y=0.985, yanchor="top",
                   font=dict(size=14)),  # fmt: skip
        meta="torus",
        annotations=notes,
        width=TORUS_W,
        height=TORUS_H,
        autosize=False,
        xaxis=dict(title=dict(text="χ1", standoff=4), **ticks),
        # −180° once, on χ1: the two axes' −180° would meet in the corner.
        yaxis=dict(title=dict(text="χ2", standoff=4), **{**ticks, "tickvals": ticks["tickvals"][1:],
                                                         "ticktext": ticks["ticktext"][1:]}),
        margin=dict(l=x0, r=TORUS_W - x1, t=y0, b=TORUS_H - y1),
        paper_bgcolor="white",
        legend=dict(orientation="h", yanchor="top", y=-0.14, x=0.0, font=dict(size=11)),
    )
    return fig


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
        what, unit = "p(flexible)", ""
        hover = "%{customdata[1]}<br>p(flexible) %{y:.2f}: probability the side chain has ≥ 2 "
        hover += "conformers<extra></extra>"
        lo, hi = 0.0, 1.0
        colours = [flexibility_colour(v) for v in value]
    else:
        what, unit = "entropy", " (nats)"
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
    from .residues import CHI_ATOMS

    n_chi = int(pred.features.chi_defined[i].sum())
    if n_chi == 0:
        return None, None
    logits, mu, kappa, sym = _mixture_arrays(pred, i)
    observed = observed_altlocs(pred, i)
    samples = pred.samples[:, i].numpy()  # [S, D]
    label = residue_label(pred, i)
    rec = pred.parsed.residues[i]
    resname = getattr(rec, "parent", None) or pred.features.resname[i]
    circle = chi_circle_figure(
        logits,
        mu,
        kappa,
        n_chi,
        sym,
        observed=observed,
        samples=samples,
        title=f"{label}: predicted χ densities",
        resname=resname,
        chi_atoms=CHI_ATOMS.get(resname, []),
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
            resname=resname,
            n_chi=n_chi,
        )
    return circle, torus


def _side_chain(atoms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CA and the side chain: what a stick overlay needs to join the cartoon."""
    return {k: v for k, v in atoms.items() if k not in ("N", "C", "O", "OXT")}


def structure_view(
    pred,
    viewer_text: "str | PdbIndex",
    i: int,
    *,
    also: list[int] = (),
    colour_by_flexibility: bool = False,
    show_observed: bool = True,
    whole: bool = False,
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
        for label, occ, atoms, written in residue_proposals(pred, j):
            colour = occupancy_colour(occ)
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
    index = viewer_text if isinstance(viewer_text, PdbIndex) else pdb_index(viewer_text)
    if whole:
        text = "\n".join(index.lines) + "\nEND\n"
    else:  # only what the view draws: the neighbourhoods of the shown residues
        parts = {line for j in shown for line in neighbourhood_pdb(
            index, residue_id(pred, j), CARTOON_A + 2.0).splitlines()[:-1]}  # fmt: skip
        text = "\n".join(line for line in index.lines if line in parts) + "\nEND\n"
    view = ensemble_view(
        text,
        focus=residue_id(pred, i),
        sampled=sampled,
        observed=observed,
        residue_colours=colours,
        labels=labels,
        whole=whole,
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


def flexibility_values(pred) -> tuple[np.ndarray, bool]:
    """[N] the flexibility score (`conformers.flexibility_score`: p_flexible, or the mixture's
    distinct mass without a flexibility head), a probability either way (True)."""
    return pred.flexibility.float().numpy(), True


def profile_figure(pred, i: int | None = None) -> go.Figure:
    """`flexibility_profile` of a prediction in file order, one track per chain, residue i (if
    given) marked; each point's customdata[0] is its residue index in the prediction."""
    order = sorted(r["index"] for r in pred.table)  # residues with χ, in file order
    values, is_p = flexibility_values(pred)
    f = pred.features
    return flexibility_profile(
        [f.chain_id[j] for j in order],
        f.resnum[order].numpy(),
        [residue_label(pred, j) for j in order],
        values[order],
        f.n_obs[order].numpy(),
        is_probability=is_p,
        selected=order.index(i) if i in order else None,
        index=order,
        split=np.array([j in pred.multiconformer.conformers for j in order]),
    )


def profile_caption(pred) -> str:
    """What the profile's bars are, in words and units (p_flexible, or the fallback score)."""
    if getattr(pred, "p_flexible", None) is not None:
        what = ("Bars: p(flexible), the network's probability (0–1) that the side chain has two "
                "or more distinct conformers; also the cartoon's colour.")  # fmt: skip
    else:
        what = ("Bars: flexibility (0–1) from the χ mixture, as these weights have no "
                "flexibility head: the weight on rotamers other than the most likely one, i.e. "
                "the chance that a draw is not the dominant rotamer; also the cartoon's colour.")
    return what + (" ▼ residues the input models with side-chain altlocs; ■ residues split in "
                   "multiconformer.pdb.")  # fmt: skip
