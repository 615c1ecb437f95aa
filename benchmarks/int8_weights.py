"""How much rounding weights to 8 bits or fewer costs in KL: a measurement before storing so.

Rounds weight matrices of every flow of a model file with the rounding of
``GalaxyModel.save(weights_dtype="int8")`` (one absmax scale per row: ``w_q = round(w / s) * s``
with ``s = max |w_row| / 127``). ``--matrices`` chooses which: ``wide`` (default; those ``save``
rounds: every matrix at least ``INT8_MIN_WIDTH`` in both dimensions, the hidden and output
layers), ``square`` (the hidden-layer matrices only), or ``all`` (also the input layers and the
10 x 10 LU factors of the 1 x 1 convolutions). ``--bits B`` rounds to B bits instead
(``s = max |w| / (2**(B-1) - 1)`` in float16, rounded up, at least 2**-14), with one scale per
row or, with ``--group G``, per G consecutive weights of a row: what a smaller storage would cost
(``--bits 6`` is what ``save(weights_dtype="int6")`` stores). Writes the
rounded model in float32, so the file is not smaller; compare with the original by
``python benchmarks/kl_unseen.py original.h5 rounded.h5``.

    python benchmarks/int8_weights.py four.h5 four_int8.h5                  # as save() does
    python benchmarks/int8_weights.py four.h5 four_int8_all.h5 --matrices all
    python benchmarks/int8_weights.py default.h5 default_4bit.h5 --bits 4 --group 32
"""

from __future__ import annotations

import argparse

import torch

from astroflow_gal import GalaxyModel
from astroflow_gal.model import INT8_MIN_WIDTH, _int8_rows, _is_int8_matrix

#: which weight matrices each ``--matrices`` choice rounds
SELECTIONS = {
    "wide": _is_int8_matrix,
    "square": lambda w: w.shape[0] == w.shape[1] >= INT8_MIN_WIDTH,
    "all": lambda w: True,
}


def round_to_bits(matrix: torch.Tensor, bits: int, group: int | None = None) -> torch.Tensor:
    """``matrix`` rounded to ``bits`` bits, one absmax scale (float16) per row or per ``group``.

    With ``bits=6`` and no group this is the rounding of ``save(weights_dtype="int6")``.
    """
    rows, columns = matrix.shape
    width = columns if group is None else group
    if columns % width:
        raise SystemExit(f"--group {group} does not divide a row of {columns} weights")
    blocks = matrix.to(torch.float32).reshape(rows, columns // width, width)
    top = 2 ** (bits - 1) - 1
    largest = blocks.abs().amax(dim=-1, keepdim=True)
    scale = (largest / top).to(torch.float16)  # rounded up, as save(weights_dtype="int6") does
    scale = torch.where(scale.to(torch.float32) * top < largest,
                        torch.nextafter(scale, torch.full_like(scale, float("inf"))), scale)
    scale = scale.clamp(min=2**-14).to(torch.float32)
    return (torch.round(blocks / scale).clamp(-top, top) * scale).reshape(rows, columns)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="model file to round")
    p.add_argument("output", help="where to write the rounded model")
    p.add_argument("--matrices", choices=list(SELECTIONS), default="wide",
                   help="which weight matrices to round (default: those save() stores in 8 bits)")
    p.add_argument("--bits", type=int, default=8,
                   help="bits per rounded weight, 2 to 8 (default 8: as save() stores them)")
    p.add_argument("--group", type=int, default=None,
                   help="with --bits: weights per scale along a row (default: the whole row)")
    args = p.parse_args()
    if not 2 <= args.bits <= 8:
        raise SystemExit(f"--bits {args.bits}: choose 2 to 8")
    if args.group is not None and args.group < 1:
        raise SystemExit(f"--group {args.group}: must be positive")

    model = GalaxyModel.load(args.model)
    n_rounded = n_all = 0
    with torch.no_grad():
        for flow in [model.flow, *model.marginals.values()]:
            for _, param in flow.named_parameters():
                n_all += param.numel()
                if param.ndim == 2 and SELECTIONS[args.matrices](param):
                    if args.bits == 8 and args.group is None:
                        values, scale = _int8_rows(param)
                        param.copy_(values.to(param.dtype) * scale[:, None])
                    else:
                        param.copy_(round_to_bits(param, args.bits, args.group))
                    n_rounded += param.numel()
    print(f"rounded {n_rounded:,} of {n_all:,} parameters ({n_rounded / n_all:.1%}) "
          f"to {args.bits} bits")
    model.save(args.output)


if __name__ == "__main__":
    main()
