"""How much 8-bit weights cost in KL: a measurement, before storing a model so.

Rounds weight matrices of every flow of a model file to 8 bits with the rounding of
``GalaxyModel.save(weights_dtype="int8")`` (one absmax scale per row: ``w_q = round(w / s) * s``
with ``s = max |w_row| / 127``). ``--matrices`` chooses which: ``wide`` (default; those ``save``
rounds: every matrix at least ``INT8_MIN_WIDTH`` in both dimensions, the hidden and output
layers), ``square`` (the hidden-layer matrices only), or ``all`` (also the input layers and the
10 x 10 LU factors of the 1 x 1 convolutions). Writes the rounded model in
float32, so the file is not smaller; compare with the original by
``python benchmarks/kl_unseen.py original.h5 rounded.h5``.

    python benchmarks/int8_weights.py four.h5 four_int8.h5                  # as save() does
    python benchmarks/int8_weights.py four.h5 four_int8_all.h5 --matrices all
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="model file to round")
    p.add_argument("output", help="where to write the rounded model")
    p.add_argument("--matrices", choices=list(SELECTIONS), default="wide",
                   help="which weight matrices to round (default: those save() stores in 8 bits)")
    args = p.parse_args()

    model = GalaxyModel.load(args.model)
    n_rounded = n_all = 0
    with torch.no_grad():
        for flow in [model.flow, *model.marginals.values()]:
            for _, param in flow.named_parameters():
                n_all += param.numel()
                if param.ndim == 2 and SELECTIONS[args.matrices](param):
                    values, scale = _int8_rows(param)
                    param.copy_(values.to(param.dtype) * scale[:, None])
                    n_rounded += param.numel()
    print(f"rounded {n_rounded:,} of {n_all:,} parameters ({n_rounded / n_all:.1%}) to 8 bits")
    model.save(args.output)


if __name__ == "__main__":
    main()
