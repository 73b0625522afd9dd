"""Training maps for the map head, made from multiconformer structures (issue 22, item 3).

A deposited multiconformer model stands in for the crystal: its structure factors, with the
model perturbed (coordinate and B errors, as no model is exact) and noise added, are the
"observed" amplitudes; a user's single-conformer model (its heaviest altloc per residue) gives
the phases. servalcat then makes σA-weighted 2mFo-DFc and mFo-DFc exactly as it does for a
user's real data (`read.read_maps(..., from_data=True)`), so the minor conformers appear at the
weak, model-biased height real maps give them. The single-conformer model's B-factors are
refined against the synthetic data before the maps are made (`bfactor.py`: the B it inherits
were refined with its altlocs, which no user's model has).
"""

import tempfile
from pathlib import Path

import gemmi
import numpy as np

from .bfactor import refine_b
from .grid import MapPair
from .read import read_maps
from .reduce import single_conformer

FREE_FRACTION = 0.05


def observed_amplitudes(
    multi: gemmi.Structure,
    d_min: float,
    rng: np.random.Generator,
    *,
    jitter: float,
    noise: float,
    unmodelled: float = 0.0,
) -> gemmi.Mtz:
    """An MTZ with FP/SIGFP/FREE computed from `multi` (perturbed) to `d_min` Å.

    Args:
        jitter: Å, standard deviation of the coordinate error added to every atom.
        noise: relative standard deviation of the Gaussian noise on each amplitude.
        unmodelled: fraction of the residues without altlocs whose side chain beyond CB holds
            only 40-90% of its electrons in the "crystal": disorder a modeller left as one
            conformer. The map then lacks density there although the labels have no altloc,
            as real maps do; without it a head learns that any missing density is an altloc.
    """
    st = multi.clone()
    st.remove_hydrogens()
    st.setup_entities()
    if unmodelled > 0:
        thin_side_chains(st, rng, unmodelled)
    for cra in st[0].all():
        cra.atom.pos += gemmi.Position(*rng.normal(0.0, jitter, 3))
        cra.atom.b_iso = max(2.0, cra.atom.b_iso * float(rng.lognormal(0.0, 0.1)))
    calc = gemmi.DensityCalculatorX()
    calc.d_min = d_min
    calc.grid.setup_from(st)
    calc.set_refmac_compatible_blur(st[0])
    calc.put_model_density_on_grid(st[0])
    grid = gemmi.transform_map_to_f_phi(calc.grid, half_l=True)
    asu = grid.prepare_asu_data(dmin=d_min, unblur=calc.blur)
    f = np.abs(asu.value_array).astype(np.float64)  # [H]
    sig = noise * f + 0.01 * f.mean()
    fo = np.abs(f + rng.normal(0.0, 1.0, f.shape) * sig)
    free = (rng.random(f.shape) < FREE_FRACTION).astype(np.float64)

    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = st.find_spacegroup()
    mtz.set_cell_for_all(st.cell)
    mtz.add_dataset("synthetic")
    for label, kind in (("FP", "F"), ("SIGFP", "Q"), ("FREE", "I")):
        mtz.add_column(label, kind)
    mtz.set_data(np.column_stack([asu.miller_array.astype(np.float64), fo, sig, free]))
    return mtz


def thin_side_chains(st: gemmi.Structure, rng: np.random.Generator, fraction: float) -> None:
    """Scale the occupancy of atoms beyond CB by U(0.4, 0.9) in `fraction` of the residues
    without altlocs (in place)."""
    for chain in st[0]:
        for res in chain:
            side = [a for a in res if a.name not in ("N", "CA", "C", "O", "CB", "OXT")]
            if not side or any(a.has_altloc() for a in res) or rng.random() >= fraction:
                continue
            keep = float(rng.uniform(0.4, 0.9))
            for atom in side:
                atom.occ *= keep


def synthetic_maps(
    multi: gemmi.Structure,
    d_min: float,
    seed: int,
    *,
    jitter: float = 0.2,
    noise: float = 0.05,
    unmodelled: float = 0.0,
    refine: bool = True,
) -> tuple[gemmi.Structure, MapPair]:
    """(single-conformer model, its maps from the synthetic data) for one structure.

    refine: the single-conformer model's B-factors are refined against the synthetic data
    first (`bfactor.refine_b`), as a user's refinement leaves them; False keeps the B refined
    with the altlocs (the head v1 was trained so)."""
    rng = np.random.default_rng(seed)
    mtz = observed_amplitudes(multi, d_min, rng, jitter=jitter, noise=noise, unmodelled=unmodelled)
    single = single_conformer(multi)
    if refine:
        single = refine_b(mtz, single, ["FP", "SIGFP", "FREE"], "synthetic data")
    with tempfile.TemporaryDirectory(prefix="qfitlatent-synth-") as tmp:
        path = Path(tmp) / "synthetic.mtz"
        mtz.write_to_file(str(path))
        return single, read_maps(path, single, from_data=True)
