"""Warm `predict` time on one CPU thread, clash screening included, and where it goes.

    python benchmarks/bench_predict.py [STRUCTURE] [--weights W] [--runs 5]

Default structure: ../shared/data/multiconf/1xso.pdb.gz (300 residues, two chains). The model
is loaded and one prediction made before timing (warm). Each step is timed on its own over
`--runs` runs, then `predict` as a whole; wall and process CPU seconds (the CPU time is what
one thread costs when the machine is shared). Writing the seven files is timed separately.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from qfitlatent.checkpoint import default_weights, load_model, weights_label
from qfitlatent.ensemble.conformers import flexibility_score, select_conformers
from qfitlatent.ensemble.multiconf import SplitOptions, build_multiconformer
from qfitlatent.ensemble.sample import sample_chis
from qfitlatent.features import featurize
from qfitlatent.mixture import Mixture
from qfitlatent.predict import N_PROPOSED, outputs, predict
from qfitlatent.structure import read_structure


def timed(fn, runs: int) -> tuple[float, float, object]:
    walls, cpus = [], []
    out = None
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("structure", nargs="?", default="../shared/data/multiconf/1xso.pdb.gz")
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, _ = load_model(args.weights, "cpu")
    path = Path(args.structure)
    pred = predict(model, path)  # warm-up
    n = pred.features.n_res
    rows = []
    t_read = timed(lambda: read_structure(path), args.runs)
    parsed = t_read[2]
    t_feat = timed(lambda: featurize(parsed), args.runs)
    feats = t_feat[2]

    def forward():
        with torch.no_grad():
            return model(feats)

    t_net = timed(forward, args.runs)
    mix = Mixture(*(t.float() for t in t_net[2].mixture))
    d, sym = feats.chi_defined, feats.pi_symmetric
    t_samp = timed(lambda: sample_chis(mix, sym, n_samples=10), args.runs)
    t_sel = timed(lambda: select_conformers(mix, d, sym, N_PROPOSED), args.runs)
    p_flex = pred.p_flexible
    score = flexibility_score(mix, d, sym, p_flex)
    t_multi = timed(
        lambda: build_multiconformer(parsed, t_sel[2], score, SplitOptions()), args.runs
    )
    t_all = timed(lambda: predict(model, path), args.runs)
    t_write = timed(lambda: outputs(pred, weights_label(args.weights)), args.runs)
    rows = [
        ("read structure", t_read),
        ("featurize", t_feat),
        ("network", t_net),
        ("10 iid samples", t_samp),
        ("select conformers", t_sel),
        ("multiconformer + clash screen", t_multi),
        ("predict (all of the above + table)", t_all),
        ("output texts (7 files)", t_write),
    ]
    m = t_all[2].multiconformer
    clashes = sum(r["status"] == "rejected: clash" for r in m.rows)
    print(f"{path.name}: {n} residues, weights {args.weights.name}, 1 thread, median of "
          f"{args.runs} warm runs; {m.n_split} residues split, {clashes} alternatives "
          "screened out\n")  # fmt: skip
    print("| step | wall (s) | CPU (s) |\n|---|---|---|")
    for name, (wall, cpu, _) in rows:
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()
