"""Regenerate the app's example with a map: 3K0N as one conformer and its σA-weighted maps.

    python benchmarks/make_map_example.py [MAPS_DIR]   # default ../shared/data/maps

Writes qfitlatent/data/3k0n_single.pdb.gz (the deposited 3K0N model reduced to the heaviest
altloc per residue, `density.reduce.single_conformer`) and qfitlatent/data/3k0n_maps.mtz.gz
(FWT/PHWT = 2mFo-DFc and DELFWT/PHDELWT = mFo-DFc, computed once by servalcat from the observed
intensities with that model's phases, as `read_maps(..., from_data=True)` does). Only H, K, L
and the four coefficient columns are kept, so the page opens the example without servalcat and
the file stays small. Prints R-work/R-free, sizes and the map's reflection count.
"""

import gzip
import sys
import tempfile
from pathlib import Path

import gemmi
import numpy as np

from qfitlatent.density import labels
from qfitlatent.density.reduce import single_conformer
from qfitlatent.density.sigmaa import maps_from_data

OUT = Path(__file__).resolve().parents[1] / "qfitlatent" / "data"
MODEL_OUT = OUT / "3k0n_single.pdb.gz"
MTZ_OUT = OUT / "3k0n_maps.mtz.gz"
KEEP = (("FWT", "F"), ("PHWT", "P"), ("DELFWT", "F"), ("PHDELWT", "P"))


def trimmed(full: gemmi.Mtz) -> gemmi.Mtz:
    """A new MTZ with only H, K, L and the KEEP columns of `full` (rows where FWT is defined)."""
    out = gemmi.Mtz(with_base=True)
    out.spacegroup, out.cell = full.spacegroup, full.cell
    out.add_dataset("maps").wavelength = full.dataset(0).wavelength if full.datasets else 0.0
    for label, typ in KEEP:
        out.add_column(label, typ)
    data = np.array(full, copy=False)  # [R, C]
    cols = [full.column_labels().index(k) for k in ("H", "K", "L")]
    cols += [full.column_labels().index(label) for label, _ in KEEP]
    rows = data[:, cols]
    rows = rows[np.isfinite(rows[:, 3])]  # no FWT: nothing to transform
    out.set_data(rows.astype(np.float32))
    out.update_reso()
    return out


def main(maps_dir: Path) -> None:
    full = gemmi.read_structure(str(maps_dir / "3k0n_refine.pdb.gz"))
    full.setup_entities()
    single = single_conformer(full)
    mtz = gemmi.read_mtz_file(str(maps_dir / "3k0n_data.mtz.gz"))
    columns = {c.label: c.type for c in mtz.columns}
    obs = labels.pick_observations(columns)
    free = labels.pick_free_flags(columns)
    maps, r_work, r_free = maps_from_data(mtz, single, [*obs, *([free] if free else [])], "3K0N")
    out = trimmed(maps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "maps.mtz"
        out.write_to_file(str(path))
        MTZ_OUT.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    text = single.make_pdb_string()  # CRYST1 and the resolution kept: the page shows it
    MODEL_OUT.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"data {'/'.join(obs)} free {free}: R-work {r_work:.3f}, R-free {r_free:.3f}")
    print(f"{MTZ_OUT.name}: {out.nreflections} reflections, d_min {out.resolution_high():.2f} Å, "
          f"{MTZ_OUT.stat().st_size / 2**20:.2f} MB gz")  # fmt: skip
    print(f"{MODEL_OUT.name}: {MODEL_OUT.stat().st_size / 2**10:.0f} kB gz")


if __name__ == "__main__":
    here = Path(__file__).resolve().parents[1]
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent / "shared" / "data" / "maps")
