"""A parsimonious multiconformer model a crystallographer can refine (our multiconformer_model2).

Rules, in the order they apply:
- A residue is split only when its flexibility score (`conformers.flexibility_score`: the
  network's p_flexible, or the mixture fallback) is at least `threshold`.
- The input's modelled side chain stays, as altloc A: it is the one conformer the data support.
  The selector's conformers (`conformers.select_conformers`, heaviest first) that are distinct
  from it (≥ 20° on some χ) are tried as B, C, … until the residue holds `max_conformers`.
- Occupancies are the mixture mass nearest each written conformer (the input's included). An
  alternative lighter than `min_occupancy` is not written. The input keeps at least that much.
  Occupancies are rounded to the 2 decimals a PDB file holds and sum to exactly 1.
- An alternative is rejected when one of its moving heavy atoms overlaps an atom of the fixed
  environment by `overlap` Å or more (overlap = r_vdW,a + r_vdW,b − distance, Bondi radii; 0.4 Å
  is the usual serious-clash cut-off). The environment of an alternative with altloc L is the
  model "in state L": blank atoms of every other residue, their altloc-L atoms where they have
  L, else their first altloc (for a residue we split, the input side chain). So backbone,
  unsplit residues and the coexisting conformers of split neighbours all count; the residue's
  own atoms and disulfide SG–SG pairs do not. Residues are processed most flexible first, and
  each alternative is screened against everything written before it, so every pair of
  coexisting atoms is checked once.
- Input altlocs: with `input_altlocs="keep"` (default) a residue the input models with several
  side-chain conformers is written exactly as in the input and we add nothing to it; with
  "replace" it starts from its primary conformer like any other residue. Observed altlocs are
  never dropped silently: "keep" is the default and the report lists them.
- B-factors of every written atom are those of the input atom of the same name (for a residue
  with input altlocs that are replaced, the most occupied one); atoms the input lacks get the
  residue's mean. The files say so in a REMARK.
Waters and ligands were removed on reading, so they are neither written nor screened against.
"""

import functools
import math
import string
from dataclasses import dataclass, field

import gemmi
import numpy as np
import torch
from scipy.spatial import cKDTree

from .. import residues
from ..structure import ParsedStructure
from .build import _replace_atoms, base_atoms, base_structure, moving_atoms, rebuildable
from .conformers import SEPARATION_DEG, Selection, chi_distance
from .sidechains import measure_chis, set_chis

# Default split threshold on the flexibility score. Chosen on the validation split with
# `python benchmarks/tune_threshold.py` (docs/multiconformer.md): re-run it for new weights.
# For qfitlatent-v3 the split count is nearest the expected number of flexible residues
# (Σ p_flexible = 1,140 over the 43 structures' residues with χ) at 0.15 (1,100 split; 2,703
# at 0.1, 424 at 0.2), but at 0.15 and 0.16 small gate structures split over 2x their expected
# number; 0.17 is the lowest threshold that keeps all 20 within 2x (ratios 0.51-1.93;
# benchmarks/multiconformer_gates.py --threshold T). p_flexible is calibrated to how rarely
# modellers build altlocs (3.9% of residues), so 0.4 would split 12 residues.
DEFAULT_THRESHOLD = 0.17
MAX_CONFORMERS = 3  # per residue, the input's included: at most 2 alternatives
MIN_OCCUPANCY = 0.1  # lighter alternatives are not written
OVERLAP_CUTOFF = 0.4  # Å of heavy-atom van der Waals overlap: a serious clash
INPUT_ALTLOCS = ("keep", "replace")
ALTLOCS = string.ascii_uppercase
# Bondi (1964) van der Waals radii, Å, by element; other elements get carbon's.
VDW_RADIUS = {"C": 1.70, "N": 1.55, "O": 1.52, "S": 1.80, "SE": 1.90}
DEFAULT_RADIUS = 1.70
REPORT_COLUMNS = (
    "chain",
    "resnum",
    "icode",
    "resname",
    "flexibility",
    "altloc",
    "occupancy",
    "chi1",
    "chi2",
    "chi3",
    "chi4",
    "source",
    "status",
    "overlap",
    "partner",
)
B_FACTOR_REMARK = (
    "B-factors are copied from the input atom of the same name; atoms the input lacks get "
    "the mean B of their residue."
)


def vdw_radius(element: str) -> float:
    return VDW_RADIUS.get(element, DEFAULT_RADIUS)


@dataclass(frozen=True)
class SplitOptions:
    threshold: float = DEFAULT_THRESHOLD  # split where the flexibility score is at least this
    max_conformers: int = MAX_CONFORMERS  # per residue, the input's side chain included
    min_occupancy: float = MIN_OCCUPANCY  # lightest alternative written
    input_altlocs: str = "keep"  # "keep": input altlocs stay, untouched; "replace": ours instead
    overlap: float = OVERLAP_CUTOFF  # Å: alternatives overlapping this much are rejected

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if not 1 <= self.max_conformers <= len(ALTLOCS):
            raise ValueError(f"max_conformers must be between 1 and {len(ALTLOCS)}")
        if not 0.0 < self.min_occupancy <= 0.5:
            raise ValueError("min_occupancy must be in (0, 0.5]")
        if self.input_altlocs not in INPUT_ALTLOCS:
            raise ValueError(f"input_altlocs must be one of {INPUT_ALTLOCS}")


@dataclass
class MulticonformerModel:
    structure: gemmi.Structure
    rows: list[dict]  # the report: one row per conformer written or rejected (REPORT_COLUMNS)
    # residue index -> [(altloc, occupancy, χ [D] radians)] as written, for split residues
    conformers: dict[int, list[tuple[str, float, torch.Tensor]]]
    expected_flexible: float  # Σ flexibility score over residues with χ
    n_split: int  # residues we split
    n_above_threshold: int  # rebuildable residues whose score reached the threshold
    n_observed_kept: int  # residues whose input altlocs were kept as they are
    options: SplitOptions
    remarks: list[str] = field(default_factory=list)

    @property
    def n_multiconformer(self) -> int:
        """Residues with ≥ 2 side-chain conformers in the file: ours and the input's kept."""
        return self.n_split + self.n_observed_kept


class Environment:
    """Heavy atoms of the model being built, and which of them coexist with altloc L.

    Static atoms (the model before any split) sit in a k-d tree; the alternatives written later
    are few and are searched by brute force. A residue's atoms are contiguous, so relabelling
    one residue touches only its own slice.
    """

    def __init__(self, st: gemmi.Structure):
        pos, rad, alt, name, desc = [], [], [], [], []
        self.labels: dict[tuple[int, int], list[str]] = {}
        self.span: dict[tuple[int, int], tuple[int, int]] = {}
        res_id = []
        self.keys: list[tuple[int, int]] = []
        for ci, chain in enumerate(st[0]):
            for ri, r in enumerate(chain):
                key = (ci, ri)
                where = f"{chain.name}{r.seqid.num}{r.seqid.icode.strip()} {r.name}"
                self.labels[key] = sorted({a.altloc for a in r if a.has_altloc()})
                self.span[key] = (len(pos), len(pos) + len(r))
                for a in r:
                    pos.append(a.pos.tolist())
                    rad.append(vdw_radius(a.element.name))
                    alt.append(a.altloc if a.has_altloc() else "")
                    name.append(a.name)
                    res_id.append(len(self.keys))
                    desc.append(f"{where} {a.name}")
                self.keys.append(key)
        self.pos = np.array(pos, dtype=np.float64).reshape(-1, 3)  # [A, 3]
        self.radius = np.array(rad)  # [A]
        self.altloc = np.array(alt, dtype="<U1")  # [A], "" for blank
        self.name = np.array(name, dtype="<U4")  # [A]
        self.res = np.array(res_id, dtype=np.int64)  # [A] index into self.keys
        self.index = {key: k for k, key in enumerate(self.keys)}
        self._desc = desc
        self.tree = cKDTree(self.pos)
        self.reach = max(VDW_RADIUS.values())  # largest partner radius
        # Alternatives written so far, per altloc: positions [Q, 3], radii [Q], residue [Q],
        # atom names [Q], is-SG [Q].
        self.added: dict[str, tuple[np.ndarray, ...]] = {}

    def describe(self, j: int) -> str:
        """'A45 LEU CD1B': residue, atom name and current altloc of static atom j."""
        return self._desc[j] + self.altloc[j]

    def describe_added(self, res: tuple[int, int], name: str, altloc: str) -> str:
        """The same for an atom of an alternative written later (its residue's first atom
        gives the residue part)."""
        first, _ = self.span[res]
        return f"{self._desc[first].rsplit(' ', 1)[0]} {name}{altloc}"

    def _present(self, j: np.ndarray, label: str) -> np.ndarray:
        """[J] bool: static atoms j that exist in the model's state `label`."""
        alt = self.altloc[j]
        out = (alt == "") | (alt == label)
        for r in np.unique(self.res[j[~out]]):  # split residues near the alternative: few
            labels = self.labels[self.keys[r]]
            if label not in labels:  # residue lacks L: its first altloc stands in
                out |= (self.res[j] == r) & (alt == labels[0])
        return out

    def near(
        self,
        pos: np.ndarray,  # [M, P, 3] moving atoms of M alternatives of one residue
        names: list[str],  # [P]
        radius: np.ndarray,  # [P]
        own: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Static atoms near any alternative, in one search: (alternative [H], static atom [H],
        overlap Å [H]), own residue and disulfide SG–SG pairs left out."""
        m, p = pos.shape[:2]
        flat = pos.reshape(-1, 3)
        hits = self.tree.query_ball_point(flat, radius.max() + self.reach)
        src = np.repeat(np.arange(m * p), [len(h) for h in hits])  # [H]
        dst = np.fromiter((j for h in hits for j in h), dtype=np.int64, count=len(src))  # [H]
        keep = self.res[dst] != self.index[own]
        keep &= ~(np.array([n == "SG" for n in names])[src % p] & (self.name[dst] == "SG"))
        src, dst = src[keep], dst[keep]
        ov = radius[src % p] + self.radius[dst] - np.linalg.norm(flat[src] - self.pos[dst], axis=1)
        return src // p, dst, ov

    def worst_overlap(
        self,
        near: tuple[np.ndarray, np.ndarray, np.ndarray],  # from `near`
        k: int,  # which alternative
        pos: np.ndarray,  # [P, 3] its moving atoms
        names: list[str],  # [P]
        radius: np.ndarray,  # [P]
        own: tuple[int, int],
        label: str,  # the altloc it would get
    ) -> tuple[float, str]:
        """The largest vdW overlap (Å) of alternative k with the environment in state `label`,
        and the partner atom; (-inf, "") when nothing is near."""
        alt_k, dst, ov = near
        sel = alt_k == k
        dst, ov = dst[sel], ov[sel]
        present = self._present(dst, label)
        worst, partner = -math.inf, ""
        if present.any():
            best = int(np.argmax(np.where(present, ov, -np.inf)))
            worst, partner = float(ov[best]), self.describe(int(dst[best]))
        if label in self.added:  # alternatives with the same letter coexist with this one
            apos, arad, ares, aname, asg = self.added[label]
            o = radius[:, None] + arad[None] - np.linalg.norm(pos[:, None] - apos[None], axis=-1)
            o[:, ares == self.index[own]] = -math.inf
            o[np.array([n == "SG" for n in names])[:, None] & asg[None]] = -math.inf
            p, q = np.unravel_index(int(np.argmax(o)), o.shape)
            if o[p, q] > worst:
                worst = float(o[p, q])
                partner = self.describe_added(self.keys[ares[q]], str(aname[q]), label)
        return worst, partner

    def split(self, res: tuple[int, int], moving: set[str], labels: list[str]) -> None:
        """Residue `res` now has altlocs `labels`; its static `moving` atoms (names as in the
        file) become the first one."""
        self.labels[res] = sorted(labels)
        a, b = self.span[res]
        self.altloc[a:b] = np.where(np.isin(self.name[a:b], list(moving)), labels[0], "")

    def add(self, res, label: str, pos: np.ndarray, radius: np.ndarray, names: list[str]):
        """An alternative written with altloc `label`: appended to that letter's arrays."""
        new = (
            pos,
            radius,
            np.full(len(names), self.index[res]),
            np.array(names, dtype="<U4"),
            np.array([n == "SG" for n in names]),
        )
        old = self.added.get(label)
        self.added[label] = (
            new
            if old is None
            else tuple(np.concatenate([a, b]) for a, b in zip(old, new, strict=True))
        )


def _occupancies(mass: np.ndarray, min_occ: float) -> list[float]:
    """Mass [M] (input first) → occupancies rounded to 0.01, summing to 1, input ≥ min_occ."""
    occ = np.asarray(mass, dtype=np.float64) / np.sum(mass)
    if occ[0] < min_occ:  # the observed side chain keeps at least the smallest written share
        occ[1:] = occ[1:] * (1.0 - min_occ) / occ[1:].sum()
        occ[0] = min_occ
    out = [0.0] + [round(float(o), 2) for o in occ[1:]]
    out[0] = round(1.0 - sum(out[1:]), 2)
    return out


def _chi_deg(chi: torch.Tensor, n_chi: int) -> dict:
    """χ in degrees to 0.01, "" past n_chi or where unmeasurable."""
    out = {}
    values = chi.tolist()
    for d in range(residues.N_CHI_MAX):
        v = values[d] if d < n_chi else math.nan
        out[f"chi{d + 1}"] = "" if math.isnan(v) else round(math.degrees(v), 2)
    return out


def build_multiconformer(
    parsed: ParsedStructure,
    selection: Selection,
    score: torch.Tensor,  # [N] flexibility score per residue
    options: SplitOptions | None = None,
) -> MulticonformerModel:
    """The multiconformer model and its report (see the module docstring for the rules)."""
    options = options or SplitOptions()
    if len(score) != len(parsed.residues):
        raise ValueError(f"{len(score)} scores for {len(parsed.residues)} residues")
    score = score.tolist()  # [N] floats: read per residue below
    keep = options.input_altlocs == "keep"
    observed = {i for i, rec in enumerate(parsed.residues) if keep and rec.n_obs >= 2}
    st = base_structure(parsed, keep=observed)  # observed altlocs stay exactly as in the input
    env = Environment(st)
    rows: list[dict] = []
    written: dict[int, list[tuple[str, float, torch.Tensor]]] = {}
    n_chi = [residues.n_chi(rec.parent) if rec.parent else 0 for rec in parsed.residues]
    with_chi = [i for i in range(len(n_chi)) if n_chi[i] > 0]
    candidates = [
        i
        for i in with_chi
        if i not in observed and rebuildable(parsed.residues[i]) and score[i] >= options.threshold
    ]
    rows += _observed_rows(parsed, sorted(observed), score, n_chi)
    prepared = _prepare(parsed, selection, candidates)
    for i in sorted(candidates, key=lambda j: (-score[j], j)):
        rec = parsed.residues[i]
        d = n_chi[i]
        prep = prepared[i]
        base, chi_in = prep["base"], prep["chi_in"]
        if prep["incomplete"]:
            rows.append(_row(i, rec, score[i], "", "", chi_in, d, "input", "side chain incomplete"))
            continue
        moving = moving_atoms(rec)
        own = (rec.chain_idx, rec.res_idx)
        accepted: list[tuple[torch.Tensor, dict]] = []
        rejected: list[dict] = []
        keep_k = prep["keep"]  # distinct proposals, heaviest first
        if keep_k:
            built = {n: x[keep_k] for n, x in prep["built"].items()}  # [M', 3] numpy
            cands = prep["chi"][keep_k]  # [M', D] as written
            mass_all = [prep["mass"][k + 1] for k in keep_k]  # [M'] vs input and each other
            names = [n for n in moving if n in built]
            pos = np.stack([built[n] for n in names], axis=1)  # [M', P, 3]
            radius = np.array([vdw_radius(residues.element_of(n)) for n in names])  # [P]
            near = env.near(pos, names, radius, own)  # one search for all candidates
        for k, chi in enumerate(cands if keep_k else []):
            if len(accepted) >= options.max_conformers - 1:
                break
            if mass_all[k] < options.min_occupancy:
                rejected.append(
                    _row(i, rec, score[i], "", round(float(mass_all[k]), 2), chi, d,
                         "predicted", "below minimum occupancy")
                )  # fmt: skip
                continue
            label = ALTLOCS[len(accepted) + 1]
            worst, partner = env.worst_overlap(near, k, pos[k], names, radius, own, label)
            if worst >= options.overlap:
                rejected.append(
                    _row(i, rec, score[i], "", round(float(mass_all[k]), 2), chi, d, "predicted",
                         "rejected: clash", overlap=round(worst, 2), partner=partner)
                )  # fmt: skip
                continue
            atoms = {n: x[k] for n, x in built.items()}
            accepted.append((chi, {"pos": pos[k], "radius": radius, "names": names, "atoms": atoms,
                                   "overlap": worst, "partner": partner}))  # fmt: skip
        if not accepted and not rejected:
            rows.append(
                _row(i, rec, score[i], "", "", chi_in, d, "input", "no distinct alternative")
            )
            continue
        occ = [1.0]
        while accepted:
            centres = np.stack([prep["chi_in_np"], *(a[0].numpy() for a in accepted)])
            occ = _occupancies(prep["nearest_mass"](centres), options.min_occupancy)
            if min(occ[1:]) >= options.min_occupancy - 1e-9:
                break
            chi, _ = accepted.pop()  # the last one: the labels of the others stay as screened
            rejected.append(_row(i, rec, score[i], "", occ[-1], chi, d, "predicted",
                                 "below minimum occupancy"))  # fmt: skip
        if accepted:
            labels = list(ALTLOCS[: len(accepted) + 1])
            confs = [base] + [{n: x for n, x in a[1]["atoms"].items()} for a in accepted]
            res = st[0][rec.chain_idx][rec.res_idx]
            _replace_atoms(res, rec, confs, labels, occ, moving)
            back = residues.file_atom_names(rec.resname)
            env.split(own, {back.get(n, n) for n in moving}, labels)
            written[i] = [(labels[0], occ[0], chi_in)]
            rows.append(_row(i, rec, score[i], "A", occ[0], chi_in, d, "input", "written"))
            for (chi, a), label, o in zip(accepted, labels[1:], occ[1:], strict=True):
                file_names = [back.get(n, n) for n in a["names"]]
                env.add(own, label, a["pos"], a["radius"], file_names)
                written[i].append((label, o, chi))
                rows.append(
                    _row(i, rec, score[i], label, o, chi, d, "predicted", "written",
                         overlap=round(a["overlap"], 2) if a["partner"] else "",
                         partner=a["partner"])
                )  # fmt: skip
        else:
            rows.append(_row(i, rec, score[i], "", "", chi_in, d, "input", "not split"))
        rows.extend(rejected)
    st.assign_label_seq_id()  # mmCIF readers that go by label_seq_id (Mol*) need it
    rows.sort(key=lambda r: r["index"])  # stable: within a residue, written before rejected
    return MulticonformerModel(
        structure=st,
        rows=rows,
        conformers=written,
        expected_flexible=float(sum(score[i] for i in with_chi)),
        n_split=len(written),
        n_above_threshold=len(candidates),
        n_observed_kept=len(observed),
        options=options,
        remarks=[B_FACTOR_REMARK],
    )


def _observed_rows(parsed: ParsedStructure, kept: list[int], score, n_chi) -> list[dict]:
    """Report rows of the residues whose input altlocs are kept: one per observed conformer."""
    rows = []
    for i in kept:
        rec = parsed.residues[i]
        for conf in rec.conformers:
            chi = (
                measure_chis(
                    {n: torch.tensor(x) for n, x in {**rec.backbone, **conf.atoms}.items()},
                    rec.parent,
                )
                if rec.parent
                else torch.full((4,), float("nan"))
            )
            rows.append(
                _row(i, rec, score[i], conf.altloc, round(conf.occ, 2), chi, n_chi[i],
                     "observed", "kept as in the input")
            )  # fmt: skip
    return rows


def _prepare(parsed: ParsedStructure, selection: Selection, candidates: list[int]) -> dict:
    """Per candidate residue, everything that does not depend on the other residues, computed
    in one batched pass per residue type (and set of atoms present):

    base (input atoms), chi_in [D] (input χ), built {atom: [M, 3]} (every proposed conformer,
    at the 0.001 Å a PDB file holds, so screened, reported and written atoms are one), chi
    [M, D] (χ as written: rounding moves them by < 0.1°), distinct [M] (a valid proposal ≥ 20°
    from the input on some χ), mass [1 + M] (share of the draws nearest the input and each
    distinct proposal).
    """
    groups: dict[tuple, list[int]] = {}
    bases = {}
    for i in candidates:
        rec = parsed.residues[i]
        bases[i] = base_atoms(rec)
        groups.setdefault((rec.parent, tuple(sorted(bases[i]))), []).append(i)
    sep = math.radians(SEPARATION_DEG)
    out = {}
    for (parent, names), idx in groups.items():
        stack = {n: torch.stack([bases[i][n] for i in idx]) for n in names}  # [R, 3]
        chi_in = measure_chis(stack, parent).float()  # [R, D]
        built = set_chis({n: x[:, None] for n, x in stack.items()}, parent,
                         selection.chi[idx].double())  # fmt: skip  # [R, M, 3] each
        built = {n: torch.round(x * 1000.0) / 1000.0 for n, x in built.items()}
        chi = measure_chis(built, parent).float()  # [R, M, D]
        d = residues.n_chi(parent)
        defined = torch.arange(residues.N_CHI_MAX) < d  # [D]
        sym = torch.tensor(residues.pi_symmetric(parent))  # [D]
        distinct = selection.valid[idx] & (chi_distance(chi, chi_in[:, None], defined, sym) >= sep)
        centres = torch.cat([chi_in[:, None], chi], 1)  # [R, 1 + M, D]
        draws = selection.draws[:, idx].transpose(0, 1)  # [R, C, D]
        dist = chi_distance(draws[:, :, None], centres[:, None], defined, sym)  # [R, C, 1 + M]
        allowed = torch.cat([torch.ones(len(idx), 1, dtype=torch.bool), distinct], 1)
        dist = torch.where(allowed[:, None], dist, torch.full_like(dist, math.inf))
        near = dist.argmin(-1)  # [R, C]
        mass = torch.zeros(centres.shape[:2]).scatter_add_(1, near, torch.ones(near.shape))
        mass = mass / draws.shape[1]
        built = {n: x.numpy() for n, x in built.items()}
        incomplete = torch.isnan(chi_in[:, :d]).any(-1).tolist()
        keep = [torch.nonzero(row).flatten().tolist() for row in distinct]
        draws_np, defined_np, sym_np = draws.numpy(), defined.numpy(), sym.numpy()
        for r, i in enumerate(idx):
            out[i] = {
                "base": bases[i],
                "chi_in": chi_in[r],
                "chi_in_np": chi_in[r].numpy(),
                "incomplete": incomplete[r],
                "built": {n: x[r] for n, x in built.items()},
                "chi": chi[r],
                "keep": keep[r],
                "mass": mass[r].tolist(),
                "nearest_mass": functools.partial(
                    _nearest_mass, draws_np[r], defined=defined_np, sym=sym_np
                ),
            }
    return out


def _nearest_mass(draws: np.ndarray, centres: np.ndarray, defined, sym) -> np.ndarray:
    """conformers.nearest_mass in numpy (it runs once per split residue on a few centres):
    [M] share of draws [C, D] nearest each centre [M, D], ties to the earlier."""
    d = np.remainder(draws[:, None] - centres[None], 2.0 * np.pi)  # [C, M, D]
    d = np.minimum(d, 2.0 * np.pi - d)
    d = np.where(sym, np.minimum(d, np.pi - d), d)
    near = np.where(defined, d, 0.0).max(-1).argmin(1)  # [C]
    return np.bincount(near, minlength=len(centres)) / len(draws)


def _row(i, rec, score, altloc, occ, chi, n_chi, source, status, overlap="", partner="") -> dict:
    return {
        "index": i,  # residue index into parsed.residues (not written to the CSV)
        **rec.id.fields(),
        "resname": rec.resname,
        "flexibility": round(float(score), 3),
        "altloc": altloc,
        "occupancy": occ,
        **_chi_deg(chi, n_chi),
        "source": source,
        "status": status,
        "overlap": overlap,
        "partner": partner,
    }


def report_csv(model: MulticonformerModel) -> str:
    """The report as CSV: '#' lines with the structure-level numbers, then REPORT_COLUMNS."""
    import csv
    import io

    o = model.options
    out = io.StringIO()
    out.write(
        f"# expected flexible residues (sum of the flexibility score): "
        f"{model.expected_flexible:.1f}\n"
        f"# residues with >= 2 conformers in the file: {model.n_multiconformer}\n"
        f"# residues split: {model.n_split} (of {model.n_above_threshold} at or above the "
        f"threshold)\n"
        f"# residues with input altlocs kept as they are: {model.n_observed_kept}\n"
        f"# settings: threshold {o.threshold:g}, max conformers {o.max_conformers}, "
        f"min occupancy {o.min_occupancy:g}, clash overlap {o.overlap:g} A, "
        f"input altlocs {o.input_altlocs}\n"
    )
    writer = csv.DictWriter(
        out, fieldnames=REPORT_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(model.rows)
    return out.getvalue()
