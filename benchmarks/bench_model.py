"""Speed and memory of the network: forward and forward+backward at N = 100 … 3000 residues.

    python benchmarks/bench_model.py                 # CPU (and CUDA when present), ours and peer
    python benchmarks/bench_model.py --sizes 100 300 --no-peer

"ours" is the whole QFitLatent forward (embeddings, 8 IPA blocks, head) at the default config;
"ours k=384" the same with max_neighbours=384: each residue attends to its 384 nearest, as many
as a training crop holds (below 384 residues it is the dense model, so only larger N are shown).
"peer" is lucidrains' `invariant-point-attention` (PyPI): 8 IPABlocks at the same widths
(d_s 128, d_z 32, 4 heads, c 8, 4 query/key and 8 value points, 2-layer 2x transition), given a
ready pair tensor, so it does less work than ours (no embeddings, no head). Each measurement runs
in a fresh process so that peak memory (CPU: growth of the resident set; CUDA: allocator peak)
belongs to it alone. Times are the best of a few repeats; on CPU the process CPU time is printed
too (with one thread it is what the wall time would be on an idle machine). Prints a markdown table.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPEATS = {100: 3, 300: 3, 1000: 2, 3000: 1}
# Peer forward+backward at 3000 keeps [N, N, H, P, 3] point differences of 8 blocks for the
# backward pass (about 14 GB): too much next to other work on a 24 GB machine.
PEER_SKIP_BACKWARD = {3000}


def synthetic_structure(n: int, device):
    """A compact chain: CA random walk with 3.8 Å steps, folded back towards the centre."""
    import torch

    from qfitlatent.environment import N_ENV
    from qfitlatent.features import Features
    from qfitlatent.geometry import backbone_frames, burial_counts

    g = torch.Generator().manual_seed(0)
    steps = torch.randn(n, 3, generator=g)
    steps = 3.8 * steps / steps.norm(dim=-1, keepdim=True)
    ca = torch.cumsum(steps, 0)
    radius = 3.0 * n ** (1 / 3) * 2.0  # about protein density
    ca = ca * (radius / ca.norm(dim=-1, keepdim=True).clamp_min(radius))
    rot, trans = backbone_frames(
        ca + torch.randn(n, 3, generator=g), ca, ca + torch.randn(n, 3, generator=g)
    )
    chi = torch.rand(n, 2, 4, generator=g) * 6.28 - 3.14
    feats = Features(
        name="synthetic", aatype=torch.randint(0, 20, (n,), generator=g), rot=rot, trans=trans,
        chi=chi, chi_mask=torch.ones(n, 2, 4, dtype=torch.bool), occ=torch.full((n, 2), 0.5),
        n_obs=torch.full((n,), 2), chain_index=torch.zeros(n, dtype=torch.long),
        resnum=torch.arange(n), chain_break=torch.zeros(n, dtype=torch.bool),
        bb_angles=torch.rand(n, 3, generator=g) * 6 - 3,
        bb_mask=torch.ones(n, 3, dtype=torch.bool), burial=burial_counts(rot, trans),
        environment=torch.rand(n, N_ENV, generator=g) * 8,
        chain_id=["A"] * n, icode=[""] * n,
        resname=["ALA"] * n,
    )  # fmt: skip
    return feats.to(device)


def child(impl: str, n: int, device: str, backward: bool) -> dict:
    """One measurement in this process; returns seconds and peak MB."""
    import torch

    from qfitlatent.config import ModelConfig
    from qfitlatent.loss import mixture_nll
    from qfitlatent.model import QFitLatent

    torch.manual_seed(0)
    cfg = ModelConfig(max_neighbours=384 if impl == "ours k=384" else 0)
    feats = synthetic_structure(n, device)
    if impl.startswith("ours"):
        model = QFitLatent(cfg).to(device)

        def run(train: bool):
            return mixture_nll(model(feats).mixture, feats)[0] if train else model(feats)
    else:
        from invariant_point_attention import IPABlock

        model = torch.nn.ModuleList(
            IPABlock(dim=cfg.d_s, heads=cfg.n_heads, scalar_key_dim=cfg.c_head,
                     scalar_value_dim=cfg.c_head, point_key_dim=cfg.n_qk_points,
                     point_value_dim=cfg.n_v_points, pairwise_repr_dim=cfg.d_z,
                     ff_mult=cfg.transition_mult, ff_num_layers=2)
            for _ in range(cfg.n_blocks)
        ).to(device)  # fmt: skip
        s0 = torch.randn(1, n, cfg.d_s, device=device)
        z = torch.randn(1, n, n, cfg.d_z, device=device)
        rot, trans = feats.rot[None], feats.trans[None] / 10.0

        def run(train: bool):
            s = s0
            for block in model:
                s = block(s, pairwise_repr=z, rotations=rot, translations=trans)
            return s.square().mean() if train else s

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def peak_mb() -> float:
        if device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB

    repeats = REPEATS.get(n, 1)
    out = {}
    # Resident-set peak only grows: both modes are measured from the same baseline, so the
    # forward+backward peak includes what the forward pass needs.
    base = 0.0 if device == "cuda" else peak_mb()
    for mode in ("forward", "forward+backward") if backward else ("forward",):
        train = mode != "forward"
        model.train(train)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats + (1 if n <= 300 else 0)):  # one warm-up where it is cheap
            sync()
            t, c = time.perf_counter(), time.process_time()
            if train:
                run(True).backward()
                model.zero_grad(set_to_none=True)
            else:
                with torch.no_grad():
                    run(False)
            sync()
            times.append((time.perf_counter() - t, time.process_time() - c))
        times = times[1:] if n <= 300 else times
        best = min(times)
        out[mode] = {"s": best[0], "cpu_s": best[1], "peak_mb": peak_mb() - base}
    return out


def measure(impl: str, n: int, device: str, threads: int) -> dict | str:
    backward = not (impl == "peer" and n in PEER_SKIP_BACKWARD)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [
        sys.executable,
        __file__,
        "--child",
        impl,
        str(n),
        device,
        str(int(backward)),
        str(threads),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1][:80]
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000])
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--no-peer", action="store_true", help="skip lucidrains' invariant-point-attention"
    )
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        impl, n, device, backward, threads = args.child
        torch.set_num_threads(int(threads))
        torch.set_flush_denormal(True)  # as train() and load_model() do, for both models
        print(json.dumps(child(impl, int(n), device, bool(int(backward)))))
        return

    import torch

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    impls = ["ours", "ours k=384"]
    if not args.no_peer:
        try:
            import invariant_point_attention  # noqa: F401

            impls.append("peer")
        except ImportError:
            print("peer skipped: pip install invariant-point-attention (needs einops)\n")
    for device in devices:
        print(f"### {device}: {machine(device)}; {args.threads} threads\n")
        print(f"load average before: {os.getloadavg()[0]:.1f}\n")
        print(
            "| N | model | forward s (cpu s) | forward MB | fwd+bwd s (cpu s) | fwd+bwd MB "
            "| peer/ours fwd | peer/ours fwd+bwd |"
        )
        print("|---|---|---|---|---|---|---|---|")
        key = "s" if device == "cuda" else "cpu_s"
        for n in args.sizes:
            rows = {
                impl: measure(impl, n, device, args.threads)
                for impl in impls
                if not (impl == "ours k=384" and n <= 384)
            }
            ours = rows["ours"]
            for impl, r in rows.items():
                if isinstance(r, str):
                    print(f"| {n} | {impl} | failed: {r} | | | | | |")
                    continue
                fwd, both = r["forward"], r.get("forward+backward")
                ratio_f = ratio_b = ""
                # Ratios of CPU time: robust to other load on a shared machine.
                if impl == "peer" and not isinstance(ours, str):
                    ratio_f = f"{fwd[key] / ours['forward'][key]:.2f}"
                    if both and "forward+backward" in ours:
                        ratio_b = f"{both[key] / ours['forward+backward'][key]:.2f}"
                both_s = f"{both['s']:.3f} ({both['cpu_s']:.3f})" if both else "skipped (memory)"
                both_mb = f"{both['peak_mb']:.0f}" if both else ""
                print(
                    f"| {n} | {impl} | {fwd['s']:.3f} ({fwd['cpu_s']:.3f}) | {fwd['peak_mb']:.0f} "
                    f"| {both_s} | "
                    f"{both_mb} | {ratio_f} | {ratio_b} |",
                    flush=True,
                )
        print()


if __name__ == "__main__":
    main()
