"""Issue 19 item 5: where do sampled χ1 near an eclipsed angle (0°, ±120°) come from?

    python benchmarks/eclipsed_chi1.py [--weights W] [--data ../shared/data/multiconf] [--n 20]

On the N smallest validation structures, draws S = 100 iid conformers per residue at
temperature 1 and 0.5 (`predict`'s sampler), and prints the share of χ1 within 20° of an
eclipsed angle: in the input (deposited χ1 of every altloc), in the draws, and the draws split by
the component they came from: its mean χ1 itself eclipsed, or staggered with a broad χ1
(κ < 4, a circular SD above ~30°), or staggered and sharp.
"""

import argparse
import math
from pathlib import Path

import torch

from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.features import featurize
from qfitlatent.mixture import Mixture, sample
from qfitlatent.structure import read_structure

ECLIPSED = torch.tensor([0.0, 120.0, -120.0])
WITHIN = 20.0  # degrees
BROAD = 4.0  # κ below this: χ1 SD above ~30°


def eclipsed(deg: torch.Tensor) -> torch.Tensor:
    d = torch.remainder(deg[..., None] - ECLIPSED + 180.0, 360.0) - 180.0
    return d.abs().min(-1).values < WITHIN


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--data", type=Path, default=Path("../shared/data/multiconf"))
    p.add_argument("--n", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    model, info = load_model(args.weights, "cpu")
    names = set(info["split"]["val"])
    files = sorted((f for f in args.data.iterdir() if f.name.split(".")[0] in names),
                   key=lambda f: f.stat().st_size)[: args.n]  # fmt: skip
    obs, counts = [], {t: {"all": [], "eclipsed mean": [], "broad": [], "sharp": []}
                       for t in (1.0, 0.5)}  # fmt: skip
    for path in files:
        feats = featurize(read_structure(path))
        with torch.no_grad():
            out = model(feats)
        mix = Mixture(*(t.float() for t in out.mixture))
        has = feats.chi_defined[:, 0]  # [N]
        obs.append(eclipsed(torch.rad2deg(feats.chi[:, :, 0][feats.chi_mask[:, :, 0]])))
        for t in counts:
            g = torch.Generator().manual_seed(0)
            chi, comp = sample(mix, 100, feats.pi_symmetric, generator=g, temperature=t)
            chi1 = torch.rad2deg(chi[:, has, 0])  # [S, n]
            k = comp[:, has]
            mu1 = torch.rad2deg(mix.mu[has, :, 0]).gather(1, k.T).T  # [S, n]
            kap1 = mix.kappa[has, :, 0].gather(1, k.T).T / t
            e = eclipsed(chi1)
            mean_ecl = eclipsed(mu1)
            counts[t]["all"].append(e.flatten())
            counts[t]["eclipsed mean"].append(e[mean_ecl])
            counts[t]["broad"].append(e[~mean_ecl & (kap1 < BROAD)])
            counts[t]["sharp"].append(e[~mean_ecl & (kap1 >= BROAD)])
    o = torch.cat(obs)
    print(f"{len(files)} validation structures, weights {args.weights.name}; χ1 within "
          f"{WITHIN:g}° of 0°/±120°\n")  # fmt: skip
    print("| χ1 from | share of all draws | eclipsed within that group |")
    print("|---|---|---|")
    print(f"| input (every altloc) | | {o.float().mean():.1%} ({int(o.sum())} of {len(o)}) |")
    for t, groups in counts.items():
        total = sum(len(x) for x in groups["all"])
        for g, parts in groups.items():
            e = torch.cat(parts)
            share = len(e) / total
            rate = e.float().mean() if len(e) else math.nan
            print(f"| T = {t:g}: {g} | {share:.1%} | {rate:.1%} |")


if __name__ == "__main__":
    main()
