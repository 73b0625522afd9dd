"""Speed and memory of the shipped configuration on real structures: inference, `predict` and
one training step, at about 300 and 1000 residues.

    python benchmarks/bench_shipped.py                           # the shipped weights, CPU
    python benchmarks/bench_shipped.py --weights runs/x/best.pt --device cuda

Each structure is measured in a fresh process on one thread (as tests and `train` run it on a
shared 2-core machine), so the peak resident set belongs to that measurement alone. Times are the
best of a few warm repeats; the process CPU time is given too, which on a busy machine is closer
to what an idle one takes.

- forward: the network alone on the whole structure, no gradient.
- predict: `qfitlatent.predict.predict` warm (the model already loaded): featurise, network,
  entropy, sampling, side-chain building and clash screening, the model that the writers write.
- train step: forward, loss (χ NLL and flexibility BCE) and backward on the whole structure,
  then an AdamW step. A training step of the shipped run is `batch_proteins` crops of at most
  `crop_size` residues, so at N = 300 this is close to one crop's cost.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "multiconf"
STRUCTURES = {300: "1xso.pdb.gz", 1000: "3e0c.pdb.gz"}  # 300 and 1,011 residues
REPEATS = 3


def child(path: str, weights: str, device: str) -> dict:
    import torch

    from qfitlatent.checkpoint import load_model
    from qfitlatent.config import TrainConfig
    from qfitlatent.features import load_features
    from qfitlatent.loss import protein_loss
    from qfitlatent.predict import predict

    model, info = load_model(weights, device)
    feats = load_features(path).to(device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def best_of(fn) -> tuple[float, float]:
        fn()  # warm-up
        times = []
        for _ in range(REPEATS):
            sync()
            t, c = time.perf_counter(), time.process_time()
            fn()
            sync()
            times.append((time.perf_counter() - t, time.process_time() - c))
        return min(times)

    def forward():
        with torch.no_grad():
            model(feats)

    train_cfg = TrainConfig(**{**TrainConfig().to_dict(), **(info["train_config"] or {})})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

    def step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        protein_loss(model(feats), feats, train_cfg).backward()
        optimizer.step()
        model.eval()

    out = {"residues": feats.n_res}
    out["forward"] = best_of(forward)
    out["predict"] = best_of(lambda: predict(model, path, device=device))
    out["train step"] = best_of(step)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    if device == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--weights", default=None, help="checkpoint (default: the shipped weights)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(child(*args.child)))
        return
    if args.weights is None:  # looked up here, so the measured child imports nothing extra
        from qfitlatent.checkpoint import default_weights

        args.weights = str(default_weights())
    rows = []
    for name in STRUCTURES.values():
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, __file__, "--child", str(DATA / name), args.weights, args.device]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"{name}: {done.stderr.strip().splitlines()[-1]}")
        rows.append((name, json.loads(done.stdout.strip().splitlines()[-1])))
    print(f"weights: {Path(args.weights).name}, device {args.device}, one thread\n")
    print(
        "| structure | N | forward s (cpu s) | predict s (cpu s) | train step s (cpu s) | peak MB |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        timed = ("forward", "predict", "train step")
        cells = " | ".join(f"{r[k][0]:.3f} ({r[k][1]:.3f})" for k in timed)
        print(f"| {name.split('.')[0]} | {r['residues']} | {cells} | {r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
