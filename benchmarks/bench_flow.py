"""Speed of the conditional spline flow against zuko's NSF, in one process, alternating.

Paper configuration (10-D data, 4-D condition, 14 layers, 10 bins, MLPs of 3 x 128 hidden
units), float32, CPU, ``--threads`` torch threads (default 2). Ours and
``zuko.flows.NSF(10, 4, transforms=14, bins=10, hidden_features=(128,) * 3, passes=2)`` run one
after the other in every round, so both see the same machine load; each figure is the median
over ``--rounds`` rounds:

(a) sampling ``--n-sample`` stars of one galaxy (no gradient),
(b) ``log_prob`` of ``--n-logprob`` stars with per-star conditions of 90 galaxies (no gradient),
(c) training steps per second at batch 1024: ours with ``train_flow`` (the package's training
    engine, checkpoints off; the time of ``warm-up + steps`` steps minus that of ``warm-up``
    steps, so start-up costs cancel), zuko with the bare RAdam loop of its documentation.

The script prints the load average before and after, the float32 matmul rate measured in the
same run (the flow's hidden-layer shape, 4096 x 128 x 128), and every rate as a fraction of the
matmul bound: the rate at which the flow would run if its matrix products ran at that rate and
everything else were free. ``--profile`` adds a ``torch.profiler`` summary of one training step
and of one sampling call (top operators by self time).

Usage::

    python benchmarks/bench_flow.py                     # defaults: about 1-2 min on 2 idle cores
    python benchmarks/bench_flow.py --device cuda --n-sample 1000000 --batch 1024  # on a GPU
    python benchmarks/bench_flow.py --profile --rounds 1
    ASTROFLOW_GAL_FUSED_SPLINE=0 python benchmarks/bench_flow.py   # the pure-torch spline
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_flow.py         # on a loaded machine

On a machine whose cores are busy with other work, torch's OpenMP threads spin at every barrier
while their partner thread waits for a core (measured here under a load of 7 on 2 cores: a
2-thread training step took 4 CPU-seconds with the default policy, 0.4 with ``PASSIVE``). The
policy is read when torch starts, so it is an environment variable; the script prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from torch import nn

from astroflow_gal.flow import ConditionalSplineFlow, fused
from astroflow_gal.flow.spline import spline_backward_by_hand

DIM, COND, LAYERS, BINS, HIDDEN = 10, 4, 14, 10, 128
CPU = torch.device("cpu")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(repeats: int = 5, device: torch.device = CPU) -> dict:
    """Best float32 rate of ``linear`` in the flow's hidden-layer shape, and of a large GEMM
    (GFLOP/s)."""
    out = {}
    for name, (m, k, n) in {"flow_shape": (4096, 128, 128), "large": (1024, 1024, 1024)}.items():
        a, w, b = (torch.randn(m, k, device=device), torch.randn(n, k, device=device),
                   torch.randn(n, device=device))
        reps = max(3, int(2e9 / (2 * m * k * n)))
        for _ in range(3):
            torch.nn.functional.linear(a, w, b)
        best = float("inf")
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.nn.functional.linear(a, w, b)
            sync(device)
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * m * k * n * reps / best / 1e9
    return out


def linear_macs(modules) -> int:
    """Multiply-adds per row of every Linear layer among ``modules`` (dense, masks included)."""
    return sum(m.weight.numel() for m in modules if isinstance(m, nn.Linear))


def ours_macs_per_star(flow: ConditionalSplineFlow) -> int:
    """Data networks and convolutions; the condition networks run once per galaxy."""
    macs = 0
    for layer in flow.layers[1::2]:
        macs += linear_macs(layer.net1.modules()) + linear_macs(layer.net2.modules())
    return macs + len(flow.layers[0::2]) * flow.dim**2


def build(device: torch.device) -> dict:
    import zuko

    flows = {"astroflow_gal": ConditionalSplineFlow(DIM, COND, LAYERS, BINS, seed=0)}
    torch.manual_seed(0)
    flows["zuko"] = zuko.flows.NSF(
        DIM, COND, transforms=LAYERS, bins=BINS, hidden_features=(HIDDEN,) * 3, passes=2
    )
    return {name: flow.to(device) for name, flow in flows.items()}


def sample_task(name, flow, n, c):
    def run():
        with torch.no_grad():
            if name == "zuko":
                torch.manual_seed(0)
                return flow(c).sample((n,))
            return flow.sample(n, c, generator=torch.Generator().manual_seed(0))

    return run


def log_prob_task(name, flow, x, c):
    def run():
        with torch.no_grad():
            return flow(c).log_prob(x) if name == "zuko" else flow.log_prob(x, c)

    return run


def training_data(n: int, galaxies: torch.Tensor, seed: int = 2):
    from astroflow_gal.training import TrainingData

    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, galaxies.shape[0], (n,), generator=g)
    x = torch.randn(n, DIM, generator=g) + 0.3 * galaxies[idx].repeat(1, 3)[:, :DIM]
    return TrainingData(x, idx, galaxies)


def ours_train_seconds(data, steps: int, warmup: int, batch: int,
                       device: torch.device = CPU) -> float:
    """Seconds per step of ``train_flow`` (start-up costs cancelled by a difference; the
    timing of ``bench_training.py``)."""
    from bench_training import bench_engine

    def make_flow() -> ConditionalSplineFlow:
        return ConditionalSplineFlow(DIM, COND, LAYERS, BINS, seed=0).to(device)

    return bench_engine(make_flow, data, batch, steps, warmup, device)


def zuko_train_seconds(flow, data, steps: int, warmup: int, batch: int) -> float:
    """Seconds per step of zuko's bare loop (RAdam, the paper's learning rate)."""
    opt = torch.optim.RAdam(flow.parameters(), lr=9e-5)
    g = torch.Generator().manual_seed(1)
    device = next(flow.parameters()).device

    def step():
        rows = torch.randint(0, data.n_stars, (batch,), generator=g)
        x, c = data.x[rows].to(device), data.conditions[data.galaxy_index[rows]].to(device)
        opt.zero_grad(set_to_none=True)
        loss = -flow(c).log_prob(x).mean()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def timed(fn, device: torch.device = CPU) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def profile_summary(flow, data, batch: int, c_one, rows: int = 15) -> None:
    """Top operators (self CPU time) of one training step and one sampling call of ours."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from astroflow_gal.training.flat import FlatParameters

    forward, backward = fused._forward, fused._backward

    def fwd(*a, **k):
        with record_function("fused_spline (no grad or forward)"):
            return forward(*a, **k)

    def bwd(*a, **k):
        with record_function("fused_spline backward"):
            return backward(*a, **k)

    fused._forward, fused._backward = fwd, bwd
    try:
        flat = FlatParameters(flow.parameters())
        opt = torch.optim.RAdam([flat.param], lr=9e-5, foreach=True)
        g = torch.Generator().manual_seed(3)

        def step():
            rows_ = torch.randint(0, data.n_stars, (batch,), generator=g)
            x, c = data.x[rows_], data.conditions[data.galaxy_index[rows_]]
            flat.zero_grad()
            with spline_backward_by_hand():
                loss = -flow.log_prob(x, c).mean()
            loss.backward()
            opt.step()

        for _ in range(2):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(f"\n== profile: one training step, batch {batch} ==")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
        flow.workers = 1  # one thread of blocks, so that the profile sees every operator
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            with torch.no_grad():
                flow.sample(8192, c_one, generator=torch.Generator().manual_seed(0))
        flow.workers = None
        print("\n== profile: sampling 8192 stars of one galaxy (blocks one after another) ==")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
    finally:
        fused._forward, fused._backward = forward, backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--n-sample", type=int, default=50_000)
    parser.add_argument("--n-logprob", type=int, default=50_000)
    parser.add_argument("--galaxies", type=int, default=90)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sample", "logprob", "train"], action="append")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler summaries")
    parser.add_argument("--json", help="write the results to this file as well")
    args = parser.parse_args()
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tasks = args.only or ["sample", "logprob", "train"]

    g = torch.Generator().manual_seed(1)
    galaxies = torch.randn(args.galaxies, COND, generator=g)
    x_lp = torch.randn(args.n_logprob, DIM, generator=g)
    c_lp = galaxies[torch.randint(0, args.galaxies, (args.n_logprob,), generator=g)]
    data = training_data(max(50_000, 20 * args.batch), galaxies)
    if device.type != "cpu":
        # the training data stay on the CPU: train_flow moves each batch, as zuko's loop does
        galaxies, x_lp, c_lp = galaxies.to(device), x_lp.to(device), c_lp.to(device)
    c_one = galaxies[0]

    flows = build(device)
    gflops = matmul_gflops(device=device)
    macs = {
        "astroflow_gal": ours_macs_per_star(flows["astroflow_gal"]),
        "zuko": linear_macs(flows["zuko"].modules()),
    }
    times: dict = {name: {t: [] for t in tasks} for name in flows}
    for _ in range(args.rounds):
        for name, flow in flows.items():  # alternating: ours, then zuko, in every round
            if "sample" in tasks:
                run = sample_task(name, flow, args.n_sample, c_one)
                if not times[name]["sample"]:
                    run()  # warm-up
                times[name]["sample"].append(timed(run, device))
            if "logprob" in tasks:
                run = log_prob_task(name, flow, x_lp, c_lp)
                if not times[name]["logprob"]:
                    run()
                times[name]["logprob"].append(timed(run, device))
            if "train" in tasks:
                if name == "zuko":
                    sec = zuko_train_seconds(flow, data, args.train_steps, 2, args.batch)
                else:
                    sec = ours_train_seconds(data, args.train_steps, 2, args.batch, device)
                times[name]["train"].append(sec)

    bound = gflops["flow_shape"] * 1e9
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fused_spline": fused.fused_wanted(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average_before": load_before,
        "matmul_gflops": gflops,
        "macs_per_star": macs,
        "rounds": args.rounds,
    }
    for name in flows:
        flops = 2 * macs[name]
        res = {}
        if "sample" in tasks:
            res["sample_stars_per_s"] = args.n_sample / statistics.median(times[name]["sample"])
            res["sample_bound_fraction"] = res["sample_stars_per_s"] * flops / bound
        if "logprob" in tasks:
            res["log_prob_stars_per_s"] = args.n_logprob / statistics.median(
                times[name]["logprob"]
            )
            res["log_prob_bound_fraction"] = res["log_prob_stars_per_s"] * flops / bound
        if "train" in tasks:  # forward + backward ~ 3 x the forward multiply-adds
            res["train_steps_per_s"] = 1.0 / statistics.median(times[name]["train"])
            res["train_bound_fraction"] = res["train_steps_per_s"] * args.batch * 3 * flops / bound
        results[name] = res
    results["ratio_to_zuko"] = {
        k: results["astroflow_gal"][k] / results["zuko"][k]
        for k in results["astroflow_gal"]
        if k.endswith("per_s")
    }
    results["matmul_bound_ours"] = {
        "stars_per_s": bound / (2 * macs["astroflow_gal"]),
        "train_steps_per_s": bound / (2 * macs["astroflow_gal"] * 3 * args.batch),
    }
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    if args.profile:
        profile_summary(flows["astroflow_gal"], data, args.batch, c_one)


if __name__ == "__main__":
    main()
