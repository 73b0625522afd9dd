"""Writing a sampled ensemble as a multiconformer model (PDB and mmCIF, via gemmi).

The written model is the input protein with its altlocs replaced by the ensemble:
- every residue starts from its primary conformer in the input (the side-chain conformer of the
  primary backbone altloc, else the heaviest one), backbone and CB blank with occupancy 1;
- a residue with several conformers gets one altloc letter per conformer on the atoms its χ move
  (CG onwards), occupancies from the sample frequencies, summing to 1;
- a residue with one conformer is written blank, at the sampled χ;
- residues the builder cannot turn (no χ, proline, modified residues with extra atoms) are
  written as their primary conformer;
- chain ids, residue numbers and insertion codes are those of the input.
Waters and ligands were removed on reading, so the model holds the protein only.
"""

import gemmi
import numpy as np
import torch

from . import residues
from .build import Atoms, can_rebuild, count_clashes, set_chis
from .ideal import moved_by
from .sample import Ensemble
from .structure import Conformer, ParsedStructure, ResidueRecord

CLASH_CUTOFF = 2.5  # Å: heavy atoms of different residues closer than this overlap


def rebuildable(rec: ResidueRecord) -> bool:
    """True where the builder can set this residue's χ: a standard residue (or one that only
    renames atoms, like MSE) with χ, other than proline."""
    same_atoms = rec.resname == rec.parent or rec.resname in residues.ATOM_RENAMES
    return bool(rec.parent) and same_atoms and can_rebuild(rec.parent)


def primary_conformer(rec: ResidueRecord) -> Conformer:
    """The input side chain a written model starts from: that of the primary backbone altloc
    where it has one, else the most occupied (ties: the first letter)."""
    for conf in rec.conformers:
        if conf.altloc == rec.primary_altloc:
            return conf
    return max(rec.conformers, key=lambda c: c.occ)


def base_atoms(rec: ResidueRecord) -> Atoms:
    """Primary backbone plus primary side chain, parent atom names, float64 tensors."""
    conf = primary_conformer(rec)
    atoms = {n: torch.tensor(x, dtype=torch.float64) for n, x in conf.atoms.items()}
    atoms.update({n: torch.tensor(x, dtype=torch.float64) for n, x in rec.backbone.items()})
    return atoms


def conformer_atoms(rec: ResidueRecord, chi: torch.Tensor) -> list[Atoms]:
    """The residue built at each row of `chi` [M, D] (radians), one dict per conformer.

    A residue whose χ are NaN (kept as observed) gives its primary input conformer.
    """
    base = base_atoms(rec)
    if torch.isnan(chi).all() or not rebuildable(rec):
        return [base] * chi.shape[0]
    built = set_chis(base, rec.parent, chi.double())  # every conformer in one batched pass
    return [{n: x[m] for n, x in built.items()} for m in range(chi.shape[0])]


def moving_atoms(rec: ResidueRecord) -> tuple[str, ...]:
    """Atoms whose position depends on χ (everything beyond the χ1 bond); () if not rebuilt."""
    return moved_by(rec.parent, 0) if rebuildable(rec) else ()


def build_model(
    parsed: ParsedStructure, ensemble: Ensemble, clash_cutoff: float = CLASH_CUTOFF
) -> tuple[gemmi.Structure, list[list[int]]]:
    """The multiconformer model, and per residue how many of its moving atoms clash, per conformer.

    Clashes are counted against the fixed rest of the structure (every other residue in its
    primary input conformer): atoms closer than `clash_cutoff` Å, disulfide SG–SG excepted.
    They are reported, not removed.
    """
    if len(ensemble) != len(parsed.residues):
        raise ValueError(
            f"ensemble has {len(ensemble)} residues, the structure {len(parsed.residues)}"
        )
    st = parsed.structure.clone()
    for chain in st[0]:  # residues outside the records (no backbone) keep one conformer too
        for res in chain:
            _keep_heaviest_conformer(res)
    for rec in parsed.residues:
        res = st[0][rec.chain_idx][rec.res_idx]
        _replace_atoms(res, rec, [base_atoms(rec)], [""], [1.0], ())
    fixed = st.clone()
    ns = gemmi.NeighborSearch(fixed[0], gemmi.UnitCell(), 5.0).populate()
    clashes = []
    for i, rec in enumerate(parsed.residues):
        confs = conformer_atoms(rec, ensemble.chi[i])
        moving = moving_atoms(rec)
        clashes.append(
            [
                count_clashes(c, moving, fixed[0], ns, (rec.chain_idx, rec.res_idx), clash_cutoff)
                for c in confs
            ]
        )
        res = st[0][rec.chain_idx][rec.res_idx]
        _replace_atoms(res, rec, confs, ensemble.labels(i), _round_occ(ensemble.occ[i]), moving)
    st.assign_label_seq_id()  # mmCIF readers that go by label_seq_id (Mol*) need it
    return st, clashes


def to_pdb(st: gemmi.Structure) -> str:
    """PDB text. Chain names longer than the format holds (mmCIF's "AAA") are shortened the way
    gemmi does it (`shorten_chain_names`); the mmCIF file keeps the originals."""
    if any(len(chain.name) > 1 for chain in st[0]):
        st = st.clone()
        st.shorten_chain_names()
    return st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))


def to_cif(st: gemmi.Structure) -> str:
    return st.make_mmcif_document().as_string()


def _round_occ(occ: torch.Tensor) -> list[float]:
    """Occupancies to the 2 decimals a PDB file holds, still summing to exactly 1."""
    out = [round(float(o), 2) for o in occ]
    out[0] = round(1.0 - sum(out[1:]), 2)
    return out


def _keep_heaviest_conformer(res: gemmi.Residue) -> None:
    """Drop every altloc but the blank atoms and the most occupied letter; clear the labels."""
    occ: dict[str, list[float]] = {}
    for atom in res:
        if atom.has_altloc():
            occ.setdefault(atom.altloc, []).append(atom.occ)
    if not occ:
        return
    keep = max(sorted(occ), key=lambda a: np.mean(occ[a]))
    for k in reversed(range(len(res))):
        atom = res[k]
        if atom.has_altloc() and atom.altloc != keep:
            del res[k]
        elif atom.has_altloc():
            atom.altloc = "\0"
            atom.occ = 1.0


def _replace_atoms(
    res: gemmi.Residue,
    rec: ResidueRecord,
    confs: list[Atoms],
    labels: list[str],
    occ: list[float],
    moving: tuple[str, ...],
) -> None:
    """Rewrite `res` with conformers `confs`; atoms in `moving` get one copy per altloc."""
    renames = residues.ATOM_RENAMES.get(rec.resname, {})
    back = {v: k for k, v in renames.items()}
    template = {renames.get(a.name, a.name): a.clone() for a in res}  # first copy seen per name
    b_mean = float(np.mean([a.b_iso for a in res])) if len(res) else 20.0
    order = [n for n in residues.BACKBONE_ATOMS if n in template]
    order += [n for n in residues.SIDECHAIN_ATOMS.get(rec.parent, ()) if n in confs[0]]
    order += [n for n in template if n not in order]
    for k in reversed(range(len(res))):
        del res[k]
    split = len(confs) > 1
    for name in order:
        copies = (
            zip(confs, labels, occ, strict=True)
            if (split and name in moving)
            else [(confs[0], "", 1.0)]
        )
        for atoms, label, o in copies:
            atom = (
                template[name].clone()
                if name in template
                else _new_atom(back.get(name, name), b_mean)
            )
            if name in atoms:
                # PDB precision in both formats, so the PDB and mmCIF files hold one model.
                atom.pos = gemmi.Position(*(round(v, 3) for v in atoms[name].tolist()))
            atom.altloc = label or "\0"
            atom.occ = o
            res.add_atom(atom)


def _new_atom(name: str, b_iso: float) -> gemmi.Atom:
    atom = gemmi.Atom()
    atom.name = name
    atom.element = gemmi.Element(name[:2] if name.startswith("SE") else name[0])
    atom.b_iso = b_iso
    return atom
