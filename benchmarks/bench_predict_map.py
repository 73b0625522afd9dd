"""How long `predict --map` takes, step by step, on one CPU thread, warm.

    python benchmarks/bench_predict_map.py [--repeats 3]

The largest real structure with data in ../shared/data/maps: 1G8A (227 residues, 1.23 Å),
its deposited single-conformer model. First its 2mFo-DFc/mFo-DFc coefficients are computed from
the observed data by servalcat (what `--map-from-data` or a data-only MTZ costs, timed on its
own) and written to an MTZ of coefficients, as a user's refinement program would leave it; then
`predict(model, structure, map_file=that MTZ)` runs `--repeats` times after one warm-up, and
the time between progress steps is the step's time. Also the same prediction without a map.
Beside it, in the same run (machine load shifts between runs, not within one): the prediction
with every column of the map's evidence read (`--all-evidence`: the near-copy numbers the shipped
head does not use), with the map proposing no conformers (`--no-map-proposals`), and without a
map. Target (issue 22): under 5 s in all with a map of coefficients.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gemmi
import torch

from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.density import labels
from qfitlatent.density.sigmaa import maps_from_data
from qfitlatent.ensemble.multiconf import SplitOptions
from qfitlatent.predict import outputs, predict

MAPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "maps"
STRUCTURE = "1g8a_refined.pdb.gz"
DATA = "1g8a_data.mtz.gz"


def timed_steps(model, structure: Path, **kw) -> dict[str, float]:
    """{step text: seconds} of one prediction, plus writing its files ("outputs")."""
    marks = []

    def mark(fraction, text):
        marks.append((time.perf_counter(), text))

    pred = predict(model, structure, progress=mark, **kw)
    t = time.perf_counter()
    outputs(pred, "bench")
    marks.append((time.perf_counter(), "end"))
    steps = {text: b - a for (a, text), (b, _) in zip(marks, marks[1:], strict=False)}
    steps["Writing the files"] = marks[-1][0] - t
    return steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--maps", type=Path, default=MAPS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_model(default_weights(), "cpu")
    structure = args.maps / STRUCTURE
    st = gemmi.read_structure(str(structure))
    st.setup_entities()
    mtz = gemmi.read_mtz_file(str(args.maps / DATA))
    columns = {c.label: c.type for c in mtz.columns}
    labin = [*labels.pick_observations(columns), labels.pick_free_flags(columns)]
    t = time.perf_counter()
    coefficients, r_work, r_free = maps_from_data(mtz, st, labin, DATA)
    servalcat_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "1g8a_maps.mtz"
        coefficients.write_to_file(str(path))
        n = len(predict(model, structure, map_file=path).parsed.residues)  # warm-up
        variants = {  # column -> predict's keywords; run interleaved, so load hits all alike
            "with map": {"map_file": path},
            "all evid.": {"map_file": path, "all_evidence": True},
            "no prop.": {"map_file": path, "options": SplitOptions(map_proposals=False)},
            "without": {},
        }
        runs = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, kw in variants.items():
                runs[name].append(timed_steps(model, structure, **kw))
    print(f"1G8A, {n} residues, one CPU thread, warm; median of {args.repeats} runs (s)")
    print(f"servalcat, maps from the data (not in the totals): {servalcat_s:.1f} s, "
          f"R-work {r_work:.3f}, R-free {r_free:.3f}")  # fmt: skip
    print(f"{'step':<62}" + "".join(f"{name:>10}" for name in variants))
    for step in (s for s in runs["with map"][0] if s != "Done"):  # "Done": the writing, below
        cells = [statistics.median(r[step] for r in rs) if step in rs[0] else None
                 for rs in runs.values()]  # fmt: skip
        print(f"{step[:61]:<62}" + "".join(f"{c:>10.2f}" if c is not None else f"{'':>10}"
                                           for c in cells))  # fmt: skip
    totals = [statistics.median(sum(v for k, v in r.items() if k != "Done") for r in rs)
              for rs in runs.values()]  # fmt: skip
    print(f"{'total':<62}" + "".join(f"{t:>10.2f}" for t in totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
