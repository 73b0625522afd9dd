"""B-factors of a single-conformer model refined against the data: the model a user would have.

A multiconformer model reduced to one conformer (`reduce.single_conformer`) keeps the
B-factors refined WITH its altlocs: the kept conformer, now at occupancy 1, has the low B of a
well-placed partial side chain, so its calculated density is too strong where the removed
conformer was, and mFo-DFc there is strongly negative. A user's own single-conformer refinement
never shows that: its side chains absorb their alternates into a higher B. Every evaluation
input made by reduction (3K0N, 3SB3) and every synthetic training map was read with the first
kind of B; 1G8A's input is a real single-conformer refinement, with the second. `refine_b`
makes the first kind into the second: isotropic B refined against the observed data, the
coordinates fixed (servalcat `refine_xtal_norefmac --fix_xyz --adp iso --unrestrained`: no
monomer library is needed, and with the coordinates fixed no geometry restraint acts anyway).

Used where inputs are made (evaluation, synthetic training maps), not in `predict`: a user's
model comes from their refinement and has its B already.
"""

import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path

import gemmi

from ..errors import MapError

N_CYCLES = 5  # R-free stops falling after 3-5 cycles of B alone (3SB3: 0.245 → 0.236)


def refine_b(
    mtz: gemmi.Mtz, model: gemmi.Structure, labin: list[str], what: str, ncycle: int = N_CYCLES
) -> gemmi.Structure:
    """A copy of `model` whose isotropic B-factors are refined against `mtz`'s data.

    Args:
        labin: [value, sigma] or [value, sigma, free flag] column labels of `mtz`.
        what: the data's name, for messages.
    Coordinates, occupancies and atoms are `model`'s; only B changes (anisotropic U removed).
    """
    hook = sys.excepthook
    from servalcat.refine import refine_xtal
    from servalcat.utils import logger

    sys.excepthook = hook  # servalcat's logger sets it on import (for its CLI)
    out = model.clone()
    with tempfile.TemporaryDirectory(prefix="qfitlatent-bref-") as tmp:
        mtz_path, xyz_path, prefix = (str(Path(tmp) / n) for n in ("in.mtz", "in.pdb", "out"))
        mtz.write_to_file(mtz_path)
        out.setup_entities()
        out.write_pdb(xyz_path)
        argv = ["--hklin", mtz_path, "--model", xyz_path, "-s", "xray", "--labin", ",".join(labin)]
        argv += ["--fix_xyz", "--adp", "iso", "--unrestrained", "--hydrogen", "no"]
        argv += ["--ncycle", str(ncycle), "-o", prefix]
        logger.stop()
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                refine_xtal.main(refine_xtal.parse_args(argv))
        except (Exception, SystemExit) as err:
            raise MapError(
                f"{what}: B-factors could not be refined against the data: {err}"
            ) from None
        finally:
            logger.start()
        refined = gemmi.read_structure(prefix + ".pdb")
    copy_b(refined, out)
    return out


def atom_key(chain: gemmi.Chain, res: gemmi.Residue, atom: gemmi.Atom) -> tuple:
    return chain.name, res.seqid.num, res.seqid.icode, atom.name, atom.altloc


def copy_b(source: gemmi.Structure, target: gemmi.Structure) -> None:
    """Set every atom of `target` (first model) to the isotropic B of the same atom in `source`
    (chain, residue number, insertion code, name, altloc), removing anisotropic U. MapError if
    an atom of `target` is not in `source`."""
    b = {atom_key(ch, res, a): a.b_iso for ch in source[0] for res in ch for a in res}  # key -> Å²
    for ch in target[0]:
        for res in ch:
            for atom in res:
                key = atom_key(ch, res, atom)
                if key not in b:
                    raise MapError(f"B refinement lost atom {key}: the refined model is not ours")
                atom.b_iso = b[key]
                atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)


def refine_b_against(path: Path, model: gemmi.Structure) -> gemmi.Structure:
    """`refine_b` against the observed data of the MTZ file `path` (gzipped or not)."""
    from .labels import pick_free_flags, pick_observations

    mtz = gemmi.read_mtz_file(str(path))
    columns = {c.label: c.type for c in mtz.columns}
    obs = pick_observations(columns)
    if obs is None:
        raise MapError(f"{path.name}: no observed data to refine B-factors against")
    free = pick_free_flags(columns)
    return refine_b(mtz, model, [*obs, *([free] if free else [])], path.name)
