"""Peak memory of sampling 10^6 stars: ``GalaxyModel.sample`` versus ``sample_to_file``.

Every case runs in a fresh Python process, which reports its resident-set high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) twice: after importing, loading the model and
drawing 64 stars (the baseline: interpreter, torch, weights, thread pools), and after the case.
The difference is the memory the case added at its peak. From it we subtract the output arrays
the case must hold: ``sample`` returns float64 columns built from an n x 10 float64 buffer; when
the table is made the buffer, the columns times their units and the table's own copies of them
coexist (3 x n x 10 x 8 bytes); ``sample_to_file`` holds no rows (they go to disk batch by batch)
but HDF5 keeps a chunk cache per column dataset (h5py's default, 8 MiB each with h5py 3.16), which
fills as the file is written: up to 10 x 8 MiB, reached at 10^6 stars. What is left,
``peak - output``, is the working set: intermediate tensors of the flow, the latent block,
allocator slack.

For each method and batch size three sizes run: exactly one batch (the working set of one flow
evaluation), a reference of two sampling blocks (131,072 stars: a full 65,536-star latent block,
full HDF5 chunks) and 10^6 stars. If intermediate tensors never exceed one batch, ``peak - output``
does not grow from the reference to 10^6 stars.

The model is the shipped one when present, else an untrained flow of the shipped architecture
(``astroflow_gal/configs/default.toml``; memory depends on the architecture, not the weights).

Run (single-threaded, as the numbers in MEMORY.md were)::

    OMP_NUM_THREADS=1 python benchmarks/bench_sampling_memory.py [--n 1000000] \
        [--batch-sizes 8192 65536] [--model FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "astroflow_gal" / "pretrained" / "default.h5"
CONDITIONS = {"M_stars": 3e10, "tau50": 7.0, "tau10": 3.0, "Z_av": 0.008}
N_COLUMNS = 10
#: Copies of the output values ``GalaxyModel.sample`` holds at its peak (see ``held``).
COPIES = 3
MIB = 2**20


def _hdf5_chunk_cache_bytes() -> int:
    """Size of h5py's default chunk cache per dataset (8 MiB with h5py 3.16 / HDF5 2.0)."""
    import h5py

    with tempfile.TemporaryDirectory() as tmp, h5py.File(Path(tmp) / "probe.h5", "w") as f:
        return int(f.id.get_access_plist().get_cache()[2])


def _maxrss_bytes() -> int:
    # Linux reports kilobytes (macOS bytes).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _architecture_model():
    """An untrained model of the shipped architecture (fixed, plausible normalisation)."""
    from astroflow_gal.data import schema
    from astroflow_gal.flow import ConditionalSplineFlow
    from astroflow_gal.model import GalaxyModel
    from astroflow_gal.normalizer import ColumnTransform, Normalizer

    config = tomllib.loads((ROOT / "astroflow_gal" / "configs" / "default.toml").read_text())
    flow = ConditionalSplineFlow(10, 4, seed=0, **config["flow"])
    centre = {"Z": (-2.3, 0.4), "M_stars": (10.0, 1.0), "tau50": (7.0, 2.0),
              "tau10": (3.0, 1.5), "Z_av": (0.008, 0.004)}
    stars = [ColumnTransform(n, schema.column(n).transform == "log10",
                             *centre.get(n, (0.0, 5.0))) for n in schema.STAR_NAMES]
    conds = [ColumnTransform(n, schema.column(n).transform == "log10", *centre[n])
             for n in schema.CONDITION_NAMES]
    return GalaxyModel(flow, Normalizer(stars, conds), meta={"name": "untrained default arch"})


def _case(method: str, n: int, batch: int, model_path: str) -> dict:
    """Run one case in this process; returns the measurements."""
    import torch

    from astroflow_gal.model import GalaxyModel

    model = GalaxyModel.load(model_path) if model_path else _architecture_model()
    model.sample(64, CONDITIONS, seed=0, batch_size=batch, allow_extrapolation=True)
    baseline = _maxrss_bytes()
    start = time.perf_counter()
    if method == "sample":
        table = model.sample(n, CONDITIONS, seed=1, batch_size=batch, progress=False,
                             allow_extrapolation=True)
        assert len(table) == n
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model.sample_to_file(n, Path(tmp) / "s.h5", CONDITIONS, seed=1, batch_size=batch,
                                 progress=False, allow_extrapolation=True)
    took = time.perf_counter() - start
    return {
        "method": method, "n": n, "batch": batch, "threads": torch.get_num_threads(),
        "baseline_mib": baseline / MIB, "peak_mib": _maxrss_bytes() / MIB,
        "added_mib": (_maxrss_bytes() - baseline) / MIB, "seconds": took,
        "model": model.meta.get("name", "unnamed"),
    }


def _run_case(method: str, n: int, batch: int, model_path: str) -> dict:
    cmd = [sys.executable, __file__, "--case", method, "--n", str(n), "--batch-sizes",
           str(batch), "--model", model_path]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="stars per case")
    parser.add_argument("--n-small", type=int, default=131_072,
                        help="reference size: two sampling blocks (default 131,072)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8192, 65536])
    parser.add_argument("--model", default=None, help="model file (default: shipped or arch)")
    parser.add_argument("--case", choices=["sample", "sample_to_file"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    model_path = args.model if args.model is not None else (str(SHIPPED) if SHIPPED.exists()
                                                             else "")
    if args.case:
        print(json.dumps(_case(args.case, args.n, args.batch_sizes[0], model_path)))
        return 0

    def held(method: str, n: int) -> float:
        # sample(): at the moment the table is made, three copies of the n x 10 float64 values
        # exist: the buffer, the columns multiplied by their units, and QTable's own copies.
        # sample_to_file(): HDF5's chunk cache of every column dataset, filled up to its size.
        if method == "sample":
            return COPIES * n * N_COLUMNS * 8 / MIB
        chunk = min(n, 65_536) * 8
        filled = -(-n * 8 // chunk) * chunk
        return N_COLUMNS * min(filled, _hdf5_chunk_cache_bytes()) / MIB

    print(f"n = {args.n:,} stars (reference n = {args.n_small:,}); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    header = ("| method | batch | n | added at peak [MiB] | output copies / HDF5 cache [MiB] | "
              "peak - output [MiB] | time [s] | stars/s |")
    lines = [header, "|" + "---|" * 8]
    rows = []
    for batch in args.batch_sizes:
        for method in ("sample", "sample_to_file"):
            excess = {}
            for n in (batch, args.n_small, args.n):
                res = _run_case(method, n, batch, model_path)
                excess[n] = res["added_mib"] - held(method, n)
                res.update(held_mib=held(method, n), excess_mib=excess[n])
                rows.append(res)
                lines.append(
                    f"| `{method}` | {batch:,} | {n:,} | {res['added_mib']:.1f} | "
                    f"{held(method, n):.1f} | {excess[n]:.1f} | {res['seconds']:.1f} | "
                    f"{n / res['seconds']:,.0f} |"
                )
                print(lines[-1], flush=True)
    print()
    print("\n".join(lines))
    print(f"\nmodel: {rows[0]['model']}; baseline RSS {rows[0]['baseline_mib']:.0f} MiB; "
          f"torch threads {rows[0]['threads']}")
    # Bounded working set: peak - output for n stars is no larger than for the reference size
    # (one latent block of 65,536 stars, full HDF5 chunks, one batch) up to allocator slack.
    ok = True
    for batch in args.batch_sizes:
        for method in ("sample", "sample_to_file"):
            ex = {r["n"]: r["excess_mib"] for r in rows
                  if r["batch"] == batch and r["method"] == method}
            grows = ex[args.n] - ex[args.n_small]
            print(f"{method}, batch {batch:,}: peak - output grows by {grows:+.1f} MiB from "
                  f"{args.n_small:,} to {args.n:,} stars (one batch alone: {ex[batch]:.1f} MiB)")
            ok &= grows <= 16.0
    verdict = "holds" if ok else "DOES NOT hold"
    print(f"intermediate tensors never exceed one batch (no growth with n): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
