"""`Features`: everything the model, the loss and the writers need from one structure.

`featurize(parsed)` turns a `structure.ParsedStructure` into tensors. All geometry that reaches
the model is invariant by construction: frames (R, t) are used only relative to each other.
"""

from dataclasses import dataclass, fields, replace

import torch

from . import residues
from .environment import environment_features
from .geometry import backbone_frames, burial_counts, dihedral
from .progress import Tick, no_tick, within
from .structure import ResidueId

STRING_LISTS = ("chain_id", "icode", "resname")
SEP = "\x1f"  # ASCII unit separator: in no chain id, insertion code or residue name
# Where featurising's passes over the residues end, as shares of its time (CPU time, one thread,
# 5,000 and 15,000 residues): the χ atoms, then the burial counts; the environment counts the rest.
CHI_DONE, BURIAL_DONE = 0.1, 0.3


@dataclass
class Features:
    """Per-residue tensors of one structure (N residues, A altloc slots, D = 4 χ).

    Residue identity (chain, resnum, icode, resname) is kept so predictions can be written back
    onto the right residues.
    """

    name: str  # file name without extensions, e.g. "1abc"
    aatype: torch.Tensor  # [N] long, 0…19 standard, 20 other
    rot: torch.Tensor  # [N, 3, 3] backbone frame rotations (rows = local axes)
    trans: torch.Tensor  # [N, 3] CA positions, Å
    chi: torch.Tensor  # [N, A, D] radians, per observed side-chain altloc (0 where undefined)
    chi_mask: torch.Tensor  # [N, A, D] bool, χ defined for that altloc
    occ: torch.Tensor  # [N, A] occupancies normalised to sum 1 per residue (0 on padding)
    n_obs: torch.Tensor  # [N] long, distinct side-chain conformers observed
    chain_index: torch.Tensor  # [N] long, index into the order chains appear
    resnum: torch.Tensor  # [N] long, author residue numbers
    chain_break: torch.Tensor  # [N] bool, residue i is not peptide-bonded to residue i-1
    bb_angles: torch.Tensor  # [N, 3] φ, ψ, ω radians (0 where undefined)
    bb_mask: torch.Tensor  # [N, 3] bool
    # [N, 3] neighbour counts around the virtual Cβ (geometry.burial_counts), over the whole
    # structure, so a training crop sees the same values as inference on the full file.
    burial: torch.Tensor
    # [N, environment.N_ENV] atoms of other residues around χ1 probes (environment.py): where
    # the input leaves room for this side chain.
    environment: torch.Tensor
    # [N] Å, the file header's resolution, the same for every residue so that crops and device
    # moves treat it like every other input; 0 where the header gives none.
    resolution: torch.Tensor
    chain_id: list[str]
    icode: list[str]
    resname: list[str]  # as in the file (MSE stays MSE; its token is MET's)

    @property
    def n_res(self) -> int:
        return int(self.aatype.shape[0])

    @property
    def chi_defined(self) -> torch.Tensor:
        """[N, D] bool: χ the residue type defines (whatever the file holds)."""
        defined, _ = residues.chi_table_tensors()
        return defined[self.aatype]

    @property
    def pi_symmetric(self) -> torch.Tensor:
        """[N, D] bool: χ whose density is π-periodic (ASP χ2, GLU χ3, PHE χ2, TYR χ2)."""
        _, symmetric = residues.chi_table_tensors()
        return symmetric[self.aatype]

    def in_loss(self, min_altlocs: int) -> torch.Tensor:
        """[N] bool: residues with a χ observed in at least `min_altlocs` distinct conformers,
        the ones the χ loss counts (1: every residue with a χ; 2: SPEC §5's R)."""
        return (self.n_obs >= min_altlocs) & self.chi_mask.any(dim=(1, 2))

    @property
    def in_r(self) -> torch.Tensor:
        """[N] bool: SPEC §5's R, residues with two or more observed side-chain conformers."""
        return self.in_loss(2)

    def without_resolution(self) -> "Features":
        """The same structure as a file whose header gives no resolution would read."""
        return replace(self, resolution=torch.zeros_like(self.resolution))

    def residue_id(self, i: int) -> ResidueId:
        return ResidueId(self.chain_id[i], int(self.resnum[i]), self.icode[i])

    def residue_ids(self) -> list[ResidueId]:
        return [
            ResidueId(c, r, i)
            for c, r, i in zip(self.chain_id, self.resnum.tolist(), self.icode, strict=True)
        ]

    def to(self, device) -> "Features":
        kw = {
            f.name: (
                getattr(self, f.name).to(device)
                if torch.is_tensor(getattr(self, f.name))
                else getattr(self, f.name)
            )
            for f in fields(self)
        }
        return Features(**kw)

    def select(self, index: torch.Tensor) -> "Features":
        """The residues at `index` [M] (a crop), in that order; chain breaks re-derived."""
        index = index.sort().values
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if torch.is_tensor(v):
                kw[f.name] = v[index]
            elif isinstance(v, list):
                kw[f.name] = [v[i] for i in index.tolist()]
            else:
                kw[f.name] = v
        out = Features(**kw)
        # A gap in the crop breaks the chain even where the full structure was continuous.
        gap = torch.ones_like(index, dtype=torch.bool)
        gap[1:] = index[1:] != index[:-1] + 1
        out.chain_break = out.chain_break | gap
        return out

    def to_dict(self) -> dict:
        """Tensors as they are; each list of strings joined into one string, because
        torch.load(weights_only=True) unpickles thousands of small strings four times slower
        than one (55 against 13 ms for a 500-residue structure), which a 1,000-file set pays
        on every load."""
        return {
            f.name: SEP.join(v) if isinstance(v := getattr(self, f.name), list) else v
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Features":
        kw = {f.name: d[f.name] for f in fields(cls)}
        for key in STRING_LISTS:
            kw[key] = kw[key].split(SEP) if kw[key] else []
        return cls(**kw)


def featurize(parsed, tick: Tick = no_tick) -> Features:
    """Tensors of a `structure.ParsedStructure` (SPEC §2, §5, §6).

    `tick(done, N)` hears the residues featurised: one count through the passes over them (the
    χ atoms residue by residue, the burial counts in one go, the environment counts a chunk of
    residues at a time), each pass taking its share of the time in the count (CHI_DONE,
    BURIAL_DONE)."""
    import numpy as np

    recs = parsed.residues
    n = len(recs)
    a_max = max(r.n_obs for r in recs)
    bb = torch.tensor(
        np.array([[r.backbone[k] for k in ("N", "CA", "C")] for r in recs])
    )  # [N, 3, 3]
    rot, trans = backbone_frames(bb[:, 0], bb[:, 1], bb[:, 2])

    # χ atoms of every conformer: [N, A, D, 4 atoms, 3] with a presence mask, filled in numpy
    # and converted once (a tensor per residue costs more than the geometry on 5,000 residues).
    quads = np.zeros((n, a_max, residues.N_CHI_MAX, 4, 3))
    chi_mask = np.zeros((n, a_max, residues.N_CHI_MAX), dtype=bool)
    occ = np.zeros((n, a_max), dtype=np.float32)
    side_chains = within(tick, n, 0.0, CHI_DONE)
    for i, rec in enumerate(recs):
        side_chains(i, n)
        chi_atoms = residues.CHI_ATOMS.get(rec.parent, ())
        for a, conf in enumerate(rec.conformers):
            occ[i, a] = conf.occ
            at = conf.atoms
            for d, names in enumerate(chi_atoms):
                if all(x in at for x in names):
                    quads[i, a, d] = [at[x] for x in names]
                    chi_mask[i, a, d] = True
    quads, chi_mask, occ = map(torch.from_numpy, (quads, chi_mask, occ))
    chi = dihedral(*quads.unbind(-2))  # [N, A, D]
    chi = torch.where(chi_mask, chi, torch.zeros_like(chi))

    chain_break = torch.tensor([r.chain_break for r in recs])
    atoms, owner = _primary_atoms(recs)
    bb_angles, bb_mask = _backbone_torsions(bb, chain_break)
    chain_order = {c: k for k, c in enumerate(dict.fromkeys(r.chain for r in recs))}
    burial = burial_counts(rot, trans)  # [N, 3]: one chunk below 65,536 residues, no count
    tick(round(n * BURIAL_DONE), n)
    around = within(tick, n, BURIAL_DONE, 1.0)
    environment = environment_features(bb[:, 0], bb[:, 1], rot, atoms, owner, tick=around)
    return Features(
        name=parsed.name,
        aatype=torch.tensor([residues.token(r.parent) for r in recs]),
        rot=rot.float(),
        trans=trans.float(),
        chi=chi.float(),
        chi_mask=chi_mask,
        occ=occ,
        n_obs=torch.tensor([r.n_obs for r in recs]),
        chain_index=torch.tensor([chain_order[r.chain] for r in recs]),
        resnum=torch.tensor([r.resnum for r in recs]),
        chain_break=chain_break,
        bb_angles=bb_angles.float(),
        bb_mask=bb_mask,
        burial=burial,
        environment=environment.float(),
        resolution=torch.full((n,), parsed.resolution or 0.0),
        chain_id=[r.chain for r in recs],
        icode=[r.icode for r in recs],
        resname=[r.resname for r in recs],
    )


def _primary_atoms(recs) -> tuple[torch.Tensor, torch.Tensor]:
    """Heavy atoms [M, 3] of each residue's backbone and first side-chain conformer (altloc A,
    or the only one), and the residue index [M] each belongs to."""
    import numpy as np

    xyz, owner = [], []
    for i, rec in enumerate(recs):
        atoms = {**rec.conformers[0].atoms, **rec.backbone} if rec.conformers else rec.backbone
        xyz.extend(atoms.values())
        owner.extend([i] * len(atoms))
    return torch.tensor(np.array(xyz), dtype=torch.float64).reshape(-1, 3), torch.tensor(owner)


def _backbone_torsions(
    bb: torch.Tensor, chain_break: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """φ, ψ, ω per residue from N, CA, C [N, 3, 3]; ω is the peptide bond before residue i."""
    n_, ca, c = bb.unbind(1)
    bonded = ~chain_break[1:]  # [N-1]: residue i+1 is bonded to residue i
    angles = torch.zeros(bb.shape[0], 3, dtype=bb.dtype)
    mask = torch.zeros(bb.shape[0], 3, dtype=torch.bool)
    phi = dihedral(c[:-1], n_[1:], ca[1:], c[1:])
    psi = dihedral(n_[:-1], ca[:-1], c[:-1], n_[1:])
    omega = dihedral(ca[:-1], c[:-1], n_[1:], ca[1:])
    angles[1:, 0], mask[1:, 0] = phi, bonded
    angles[:-1, 1], mask[:-1, 1] = psi, bonded
    angles[1:, 2], mask[1:, 2] = omega, bonded
    return torch.where(mask, angles, torch.zeros_like(angles)), mask


def load_features(source, name: str | None = None) -> Features:
    """Read a structure (path or bytes) and featurize it."""
    from .structure import read_structure

    return featurize(read_structure(source, name=name))
