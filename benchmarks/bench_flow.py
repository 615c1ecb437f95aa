"""Speed of the conditional spline flow against zuko's NSF, in one process.

Measures, for the paper configuration (10-D data, 4-D condition, 14 layers, 10 bins, MLPs of
3 x 128 hidden units), float32, torch threads = cores:

(a) sampling 200,000 stars of one galaxy,
(b) log_prob of 200,000 stars with per-star conditions from 90 galaxies,
(c) training steps per second at batch 1024 with RAdam.

Each number is the best of ``--repeats`` runs. The roofline is the measured float32 matmul rate
of this machine (shape of the flow's hidden layers) times the flow's multiply-adds per star.

Usage::

    python benchmarks/bench_flow.py                 # everything, both implementations
    python benchmarks/bench_flow.py --only sample --skip-zuko
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from torch import nn

from astroflow_gal.flow import ConditionalSplineFlow
from astroflow_gal.flow.spline import spline_backward_by_hand
from astroflow_gal.training.flat import FlatParameters

DIM, COND, LAYERS, BINS, HIDDEN = 10, 4, 14, 10, 128


def matmul_gflops(repeats: int = 5) -> dict[str, float]:
    """Best float32 rate of ``linear`` in the flow's hidden-layer shape, and of a large GEMM."""
    out = {}
    for name, (m, k, n) in {"flow_shape": (4096, 128, 128), "large": (2048, 2048, 2048)}.items():
        a, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
        reps = max(3, int(4e9 / (2 * m * k * n)))
        for _ in range(3):
            torch.nn.functional.linear(a, w, b)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.nn.functional.linear(a, w, b)
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * m * k * n * reps / best / 1e9
    return out


def linear_macs(modules) -> int:
    """Multiply-adds per row of every Linear layer among ``modules`` (dense, masks included)."""
    return sum(m.weight.numel() for m in modules if isinstance(m, nn.Linear))


def ours_macs_per_star(flow: ConditionalSplineFlow) -> int:
    """Data networks and convolutions; the condition networks run once per galaxy, not per
    star."""
    macs = 0
    for layer in flow.layers[1::2]:
        macs += linear_macs(layer.net1.modules()) + linear_macs(layer.net2.modules())
    return macs + len(flow.layers[0::2]) * flow.dim**2


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def build(skip_zuko: bool):
    flows = {"astroflow_gal": ConditionalSplineFlow(DIM, COND, LAYERS, BINS, seed=0)}
    if not skip_zuko:
        import zuko

        torch.manual_seed(0)
        flows["zuko"] = zuko.flows.NSF(
            DIM, COND, transforms=LAYERS, bins=BINS, hidden_features=(HIDDEN,) * 3, passes=2
        )
    return flows


def sample_fn(name, flow, n, c, seed=0):
    def run():
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            if name == "zuko":
                torch.manual_seed(seed)
                return flow(c).sample((n,))
            return flow.sample(n, c, generator=g)

    return run


def log_prob_fn(name, flow, x, c):
    def run():
        with torch.no_grad():
            return flow(c).log_prob(x) if name == "zuko" else flow.log_prob(x, c)

    return run


def train_rate(name, flow, data, conds, steps, batch, seed=0) -> float:
    """Steps/s of RAdam training. zuko's flow is trained as its documentation shows; this
    package's flow as ``train_flow`` trains it: parameters packed into one flat tensor, the
    spline's hand-written backward."""
    if name == "zuko":
        params, zero_grad = list(flow.parameters()), None
    else:
        flat = FlatParameters(flow.parameters())
        params, zero_grad = [flat.param], flat.zero_grad
    opt = torch.optim.RAdam(params, lr=1e-4, foreach=True)
    zero_grad = zero_grad or (lambda: opt.zero_grad(set_to_none=True))
    g = torch.Generator().manual_seed(seed)

    def step():
        pick = torch.randint(0, data.shape[0], (batch,), generator=g)
        x, c = data[pick], conds[pick]
        if name == "zuko":
            lp = flow(c).log_prob(x)
        else:
            with spline_backward_by_hand():
                lp = flow.log_prob(x, c)
        loss = -lp.mean()
        zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--n-sample", type=int, default=200_000)
    parser.add_argument("--n-logprob", type=int, default=200_000)
    parser.add_argument("--galaxies", type=int, default=90)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["sample", "logprob", "train"], action="append")
    parser.add_argument("--skip-zuko", action="store_true")
    parser.add_argument("--json", help="write the results to this file as well")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = args.only or ["sample", "logprob", "train"]

    g = torch.Generator().manual_seed(1)
    galaxies = torch.randn(args.galaxies, COND, generator=g)
    c_one = galaxies[0]
    x_lp = torch.randn(args.n_logprob, DIM, generator=g)
    c_lp = galaxies[torch.randint(0, args.galaxies, (args.n_logprob,), generator=g)]

    flows = build(args.skip_zuko)
    gflops = matmul_gflops()
    macs = {"astroflow_gal": ours_macs_per_star(flows["astroflow_gal"])}
    if "zuko" in flows:
        macs["zuko"] = linear_macs(flows["zuko"].modules())
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul_gflops": gflops,
        "macs_per_star": macs,
        "load_average": os.getloadavg(),
    }
    for name, flow in flows.items():
        res = {}
        flops = 2 * macs[name]
        if "sample" in tasks:
            t = best_time(sample_fn(name, flow, args.n_sample, c_one), args.repeats)
            res["sample_stars_per_s"] = args.n_sample / t
        if "logprob" in tasks:
            t = best_time(log_prob_fn(name, flow, x_lp, c_lp), args.repeats)
            res["log_prob_stars_per_s"] = args.n_logprob / t
        if "train" in tasks:
            res["train_steps_per_s"] = train_rate(
                name, flow, x_lp, c_lp, args.train_steps, args.batch
            )
        for key in ("sample_stars_per_s", "log_prob_stars_per_s"):
            if key in res:
                res[key.replace("stars_per_s", "roofline_fraction")] = (
                    res[key] * flops / (gflops["flow_shape"] * 1e9)
                )
        if "train_steps_per_s" in res:  # forward + backward ~ 3 x the forward multiply-adds
            res["train_roofline_fraction"] = (
                res["train_steps_per_s"] * args.batch * 3 * flops / (gflops["flow_shape"] * 1e9)
            )
        results[name] = res
        print(name, json.dumps(res, indent=1), flush=True)
    if "zuko" in results:
        results["ratio_to_zuko"] = {
            k: results["astroflow_gal"][k] / results["zuko"][k]
            for k in results["astroflow_gal"]
            if k.endswith("per_s") and k in results["zuko"]
        }
    results["load_average_after"] = os.getloadavg()
    print(json.dumps({k: v for k, v in results.items() if k not in flows}, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
