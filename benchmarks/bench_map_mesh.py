"""What the viewer's map costs per residue: the box, its cube text, and the viewer HTML.

    python benchmarks/bench_map_mesh.py

On the bundled example with its map (3K0N, 1.39 Å): reads the maps once, then for every
residue with a CB cuts the 2mFo-DFc and mFo-DFc boxes and writes the three isosurfaces'
cube text (`viz.density_mesh.residue_meshes`), as the page does on a residue change. Prints the
median and worst time per residue, the box's points and the bytes added to the viewer's HTML.
"""

import statistics
import time
from importlib import resources

import gemmi

from qfitlatent.density import read_maps
from qfitlatent.viz.density_mesh import residue_meshes


def main() -> None:
    data = resources.files("qfitlatent").joinpath("data")
    st = gemmi.read_structure(str(data / "3k0n_single.pdb.gz"))
    t0 = time.perf_counter()
    maps = read_maps(str(data / "3k0n_maps.mtz.gz"), st)
    read_s = time.perf_counter() - t0
    times, sizes = [], []
    for res in st[0]["A"]:
        atoms = {a.name: a.pos.tolist() for a in res}
        if "CB" not in atoms:
            continue
        t0 = time.perf_counter()
        items = residue_meshes(maps, atoms)
        times.append(time.perf_counter() - t0)
        sizes.append(sum(len(m["cube"]) for m in items))
    n = abs(int(items[0]["cube"].splitlines()[3].split()[0])) ** 3
    print(f"read the maps (FFT of 2 × 41,498 coefficients): {read_s:.2f} s")
    print("| residues | box points | ms per residue (median / max) | HTML bytes per residue |")
    print("|---|---|---|---|")
    print(f"| {len(times)} | {n:,} | {1000 * statistics.median(times):.0f} / "
          f"{1000 * max(times):.0f} | {statistics.median(sizes):,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
