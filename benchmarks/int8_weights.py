"""How much an 8-bit storage of the hidden-layer weights would cost in KL: a measurement only.

Rounds chosen weight matrices of every flow of a model file to 8 bits (one absmax scale per row:
``w_q = round(w / s) * s`` with ``s = max |w_row| / 127``) and writes the rounded model (float32,
so the file is not smaller; the point is the KL). Compare with the original by
``python benchmarks/kl_unseen.py original.h5 rounded.h5``. The package does not store 8-bit
weights; this tells whether it should.

    python benchmarks/int8_weights.py four.h5 four_int8.h5                  # 128 x 128 only
    python benchmarks/int8_weights.py four.h5 four_int8_all.h5 --all-matrices
"""

from __future__ import annotations

import argparse

import torch

from astroflow_gal import GalaxyModel


def round_rows_to_int8(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (rows, ...) rounded to 255 levels per row, symmetric about 0 (dimensionless)."""
    rows = weight.reshape(weight.shape[0], -1)
    scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(rows.dtype).tiny) / 127
    return (torch.round(rows / scale) * scale).reshape(weight.shape)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="model file to round")
    p.add_argument("output", help="where to write the rounded model")
    p.add_argument("--all-matrices", action="store_true",
                   help="round every weight matrix, not only the square hidden-layer ones")
    args = p.parse_args()

    model = GalaxyModel.load(args.model)
    n_rounded = n_all = 0
    with torch.no_grad():
        for flow in [model.flow, *model.marginals.values()]:
            for _, param in flow.named_parameters():
                n_all += param.numel()
                square_hidden = param.ndim == 2 and param.shape[0] == param.shape[1] > 16
                if param.ndim >= 2 and (args.all_matrices or square_hidden):
                    param.copy_(round_rows_to_int8(param))
                    n_rounded += param.numel()
    print(f"rounded {n_rounded:,} of {n_all:,} parameters ({n_rounded / n_all:.1%}) to 8 bits")
    model.save(args.output)


if __name__ == "__main__":
    main()
