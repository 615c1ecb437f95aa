"""Training throughput of the paper-configuration flow, against zuko's neural spline flow.

Measures optimisation steps per second and stars per second at batch 1024 (10-D stars, 4-D
conditions, 14 layers, K = 10 bins, 3 x 128 hidden units), for

- ``train_flow``: the full training engine (seeded data order, schedule, NaN guard, gradient
  norm check; no checkpoints), start-up cost excluded,
- ``astroflow_gal loop``: a bare loop of ``log_prob`` / backward / RAdam step on the same flow,
- ``zuko NSF loop``: the same bare loop on ``zuko.flows.NSF(10, 4, transforms=14, bins=10,
  hidden_features=(128,) * 3, passes=2)``.

Every batch mixes stars of ``--galaxies`` galaxies, as in training on a suite.

Run::

    python benchmarks/bench_training.py [--steps 10] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch


def _data(n_stars: int, n_galaxies: int, seed: int = 0):
    from astroflow_gal.training import TrainingData

    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(n_galaxies, 4, generator=g)
    idx = torch.randint(0, n_galaxies, (n_stars,), generator=g)
    x = torch.randn(n_stars, 10, generator=g) + 0.3 * cond[idx].repeat(1, 3)[:, :10]
    return TrainingData(x, idx, cond)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_loop(log_prob, params, data, batch: int, steps: int, warmup: int, device) -> float:
    """Seconds per step of a bare maximum-likelihood loop."""
    opt = torch.optim.RAdam(params, lr=9e-5)
    gen = torch.Generator().manual_seed(1)
    times = []
    for i in range(warmup + steps):
        rows = torch.randint(0, data.n_stars, (batch,), generator=gen)
        x = data.x[rows].to(device)
        c = data.conditions[data.galaxy_index[rows]].to(device)
        _sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = -log_prob(x, c).mean()
        loss.backward()
        opt.step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]  # median


def bench_engine(make_flow, data, batch: int, steps: int, warmup: int, device) -> float:
    """Seconds per step of ``train_flow``: the time of ``warmup + steps`` steps minus that of
    ``warmup`` steps, each from a fresh flow, so that start-up costs cancel."""
    from astroflow_gal.training import train_flow

    def run(n: int) -> float:
        flow = make_flow()
        _sync(device)
        t = time.perf_counter()
        train_flow(flow, data, epochs=1, batch_size=batch, seed=0, device=device,
                   max_steps=n, progress=False, checkpoint_every=None)
        _sync(device)
        return time.perf_counter() - t

    return (run(warmup + steps) - run(warmup)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    parser.add_argument("--batch", type=int, default=1024, help="stars per step (1024)")
    parser.add_argument("--galaxies", type=int, default=90, help="galaxies per data set (90)")
    parser.add_argument("--device", default="cpu", help="device (cpu)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    import zuko

    from astroflow_gal.flow import ConditionalSplineFlow

    data = _data(max(20 * args.batch, 50_000), args.galaxies)
    rows = []

    def make_flow():
        return ConditionalSplineFlow(10, 4, n_layers=14, bins=10, hidden=128, hidden_layers=3,
                                     seed=0)

    n_ours = sum(p.numel() for p in make_flow().parameters())
    rows.append(("astroflow_gal train_flow", n_ours,
                 bench_engine(make_flow, data, args.batch, args.steps, args.warmup, device)))
    ours = make_flow().to(device)
    rows.append(("astroflow_gal loop", n_ours,
                 bench_loop(ours.log_prob, list(ours.parameters()), data, args.batch,
                            args.steps, args.warmup, device)))

    torch.manual_seed(0)
    nsf = zuko.flows.NSF(10, 4, transforms=14, bins=10, hidden_features=(128,) * 3,
                         passes=2).to(device)
    rows.append(("zuko NSF loop", sum(p.numel() for p in nsf.parameters()),
                 bench_loop(lambda x, c: nsf(c).log_prob(x), list(nsf.parameters()), data,
                            args.batch, args.steps, args.warmup, device)))

    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.galaxies} galaxies, torch {torch.__version__}, zuko {zuko.__version__}")
    print(f"| {'implementation':<26} | {'parameters':>10} | {'steps/s':>8} | {'stars/s':>9} |")
    print(f"|{'-' * 28}|{'-' * 11}:|{'-' * 9}:|{'-' * 10}:|")
    for name, n_params, seconds in rows:
        print(f"| {name:<26} | {n_params:>10,} | {1 / seconds:>8.2f} | "
              f"{args.batch / seconds:>9,.0f} |")


if __name__ == "__main__":
    main()
