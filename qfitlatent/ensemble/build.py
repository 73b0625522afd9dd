"""Building written models from the input (PDB and mmCIF, via gemmi): shared pieces.

- a residue's primary conformer in the input is the side-chain conformer of the primary
  backbone altloc, else the heaviest one (`primary_conformer`); `base_structure` gives every
  residue as that, backbone and CB blank with occupancy 1;
- `split_residue` splits one residue in place: one altloc letter per conformer on the atoms its
  χ move (CG onwards), given occupancies;
- residues the builder cannot turn (no χ, proline, modified residues with extra atoms) are
  written as their primary conformer;
- chain ids, residue numbers and insertion codes are those of the input.
`multiconf.build_multiconformer` makes the altloc model from the input's every atom
(`input_model`, `split_residue`): waters, ligands, metals, hydrogens and every altloc stay.
`samples_model` makes the multi-model ensemble of the protein alone (one conformer per
residue, no hydrogens: they would not follow the turned side chains).
"""

import string

import gemmi
import numpy as np
import torch

from .. import residues
from ..ideal import moved_by
from ..structure import Conformer, ParsedStructure, ResidueRecord
from .sidechains import Atoms, can_rebuild, set_chis


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
    # from_numpy: this runs for every residue of every prediction, and torch.tensor is slow.
    atoms = {n: torch.from_numpy(np.asarray(x, dtype=np.float64)) for n, x in conf.atoms.items()}
    atoms.update(
        {n: torch.from_numpy(np.asarray(x, dtype=np.float64)) for n, x in rec.backbone.items()}
    )
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


def base_structure(parsed: ParsedStructure) -> gemmi.Structure:
    """The protein as one conformer per residue (what `samples_model` turns): each record's
    primary conformer, blank, with occupancy 1; residues outside the records keep their most
    occupied altloc."""
    st = parsed.structure.clone()
    record_at = {(rec.chain_idx, rec.res_idx): i for i, rec in enumerate(parsed.residues)}
    for ci, chain in enumerate(st[0]):
        for ri, res in enumerate(chain):
            i = record_at.get((ci, ri))
            if i is not None and _plain(res):
                continue  # no altlocs, full occupancy: already its primary conformer
            keep_heaviest_conformer(res)
            if i is not None:
                rec = parsed.residues[i]
                _replace_atoms(res, rec, [base_atoms(rec)], [""], [1.0], ())
    return st


def input_model(parsed: ParsedStructure, collapse: set[int] = frozenset()) -> gemmi.Structure:
    """The input's first model with every atom as read; records whose index is in `collapse`
    are reduced to their primary conformer (blank, occupancy 1), as `base_structure` does."""
    st = parsed.input_structure().clone()
    for i in collapse:
        rec = parsed.residues[i]
        ci, ri = parsed.input_position(rec)
        res = st[0][ci][ri]
        keep_heaviest_conformer(res)
        _replace_atoms(res, rec, [base_atoms(rec)], [""], [1.0], ())
    return st


def split_residue(
    res: gemmi.Residue,
    rec: ResidueRecord,
    alternatives: list[Atoms],  # predicted conformers, parent atom names, [3] each
    labels: list[str],  # [A, B, …]: A for the input side chain
    occ: list[float],  # one per label
    moving: tuple[str, ...],  # parent names of the atoms χ moves
) -> set[str]:
    """Split a residue without altlocs in place: its moving atoms (and the hydrogens riding on
    them) become altloc A at occ[0], every other atom stays exactly as read; after each moving
    heavy atom come its copies at the alternatives' positions. Returns the file names of the
    atoms now labelled A."""
    renames = residues.ATOM_RENAMES.get(rec.resname, {})
    atoms = [a.clone() for a in res]
    heavy = [a for a in atoms if not a.is_hydrogen()]

    def parent(h: gemmi.Atom) -> str:  # the heavy atom a hydrogen rides on: the nearest one
        return min(heavy, key=lambda a: a.pos.dist(h.pos)).name if heavy else ""

    for k in reversed(range(len(res))):
        del res[k]
    relabelled = set()
    for atom in atoms:
        own = parent(atom) if atom.is_hydrogen() else atom.name
        if renames.get(own, own) not in moving:
            res.add_atom(atom)
            continue
        atom.altloc, atom.occ = labels[0], occ[0]
        relabelled.add(atom.name)
        res.add_atom(atom)
        name = renames.get(atom.name, atom.name)
        if atom.is_hydrogen():
            continue  # the alternatives carry heavy atoms only: refinement adds riding H
        for alt, label, o in zip(alternatives, labels[1:], occ[1:], strict=True):
            copy = atom.clone()
            copy.pos = gemmi.Position(*(round(v, 3) for v in alt[name].tolist()))
            copy.altloc, copy.occ = label, o
            res.add_atom(copy)
    return relabelled


def _plain(res: gemmi.Residue) -> bool:
    return all(not a.has_altloc() and a.occ == 1.0 for a in res)


def build_batched(
    parsed: ParsedStructure,
    indices: list[int],  # rebuildable residues
    chi: torch.Tensor,  # [len(indices) or N, M, D] radians, row k for residue indices[k]
) -> dict[int, dict[str, np.ndarray]]:
    """Residue i built at each of its M χ rows, {i: {atom: [M, 3] numpy}}, rounded to the
    0.001 Å a PDB file holds. One batched `set_chis` per residue type and set of atoms present,
    instead of one per residue (the per-call overhead dominated)."""
    rows = {i: k for k, i in enumerate(indices)} if chi.shape[0] == len(indices) else None
    groups: dict[tuple, list[int]] = {}
    bases = {}
    for i in indices:
        bases[i] = base_atoms(parsed.residues[i])
        groups.setdefault((parsed.residues[i].parent, tuple(sorted(bases[i]))), []).append(i)
    out = {}
    for (parent, names), idx in groups.items():
        stack = {n: torch.stack([bases[i][n] for i in idx])[:, None] for n in names}  # [R, 1, 3]
        take = [rows[i] for i in idx] if rows is not None else idx
        built = set_chis(stack, parent, chi[take].double())  # [R, M, 3] each
        built = {n: (torch.round(x * 1000.0) / 1000.0).numpy() for n, x in built.items()}
        for r, i in enumerate(idx):
            out[i] = {n: x[r] for n, x in built.items()}
    return out


def samples_model(
    parsed: ParsedStructure,
    samples: torch.Tensor,  # [S, N, D] radians
) -> gemmi.Structure:
    """A multi-model structure: model s is the whole protein with every rebuildable residue at
    samples[s] (one conformer, no altlocs); the others as observed (primary conformer)."""
    base = base_structure(parsed)
    built = build_batched(parsed, [i for i, r in enumerate(parsed.residues) if rebuildable(r)],
                          samples.transpose(0, 1))  # fmt: skip
    st = base.clone()
    while len(st) > 0:
        del st[0]
    for s in range(samples.shape[0]):
        model = base[0].clone()
        model.num = s + 1
        for i, confs in built.items():
            rec = parsed.residues[i]
            renames = residues.ATOM_RENAMES.get(rec.resname, {})
            moving = set(moving_atoms(rec))
            for atom in model[rec.chain_idx][rec.res_idx]:
                name = renames.get(atom.name, atom.name)
                if name in moving and name in confs:
                    atom.pos = gemmi.Position(*confs[name][s].tolist())
        st.add_model(model)
    st.assign_label_seq_id()
    return st


# One-character chain names a PDB file can hold, in the order they replace longer ones.
PDB_CHAIN_NAMES = string.ascii_uppercase + string.ascii_lowercase + string.digits


class ChainNamesError(ValueError):
    """More chains with long names than one-character PDB chain names: no PDB file."""


def pdb_chain_map(st: gemmi.Structure) -> dict[str, str]:
    """{mmCIF chain name: PDB chain name} for the names longer than one character (mmCIF's
    "ABC"), each given an unused one-character name; {} where every name fits. Raises
    ChainNamesError where the one-character names run out."""
    names = list(dict.fromkeys(ch.name for model in st for ch in model))
    long = [n for n in names if len(n) > 1]
    free = [c for c in PDB_CHAIN_NAMES if c not in names]
    if len(long) > len(free):
        raise ChainNamesError(
            f"{len(names)} chains, {len(long)} of them with names longer than one character, "
            f"do not fit the {len(PDB_CHAIN_NAMES)} one-character chain names of the PDB format"
        )
    return dict(zip(long, free, strict=False))


def to_pdb(st: gemmi.Structure, chain_map: dict[str, str] | None = None) -> str:
    """PDB text, every model. Chain names longer than one character are renamed by
    `chain_map` (default `pdb_chain_map(st)`); the mmCIF file keeps the originals."""
    chain_map = pdb_chain_map(st) if chain_map is None else chain_map
    if chain_map:
        st = st.clone()
        for model in st:
            for chain in model:
                chain.name = chain_map.get(chain.name, chain.name)
    return st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))


def to_cif(st: gemmi.Structure) -> str:
    return st.make_mmcif_document().as_string()


def keep_heaviest_conformer(res: gemmi.Residue) -> None:
    """Drop every altloc but the blank atoms and the most occupied letter (mean occupancy of its
    atoms; ties to the first letter); clear the labels and set those atoms' occupancy to 1."""
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
    atom.element = gemmi.Element(residues.element_of(name))
    atom.b_iso = b_iso
    return atom
