"""``astroflow-gal suite``: make, convert and inspect galaxy-suite files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.schema import condition_column


def _float_or_none(text: str) -> float | None:
    if text.lower() in ("none", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``suite`` sub-command with ``synthetic``, ``nihao`` and ``info``."""
    p = sub.add_parser("suite", help="make, convert and inspect galaxy-suite files (HDF5)")
    actions = p.add_subparsers(dest="suite_command", required=True)

    syn = actions.add_parser("synthetic", help="draw a synthetic suite with an exact eDF")
    syn.add_argument("-o", "--output", type=Path, required=True, help="suite file to write")
    syn.add_argument("--n-galaxies", type=int, default=95, help="number of galaxies (95)")
    syn.add_argument("--seed", type=int, default=0, help="random seed (0)")
    syn.add_argument("--max-total-stars", type=int, default=None,
                     help="upper bound of the total number of stars (generator default)")
    syn.add_argument("--min-stars", type=int, default=None,
                     help="floor of stars per galaxy (generator default)")
    syn.add_argument("--max-stars-per-galaxy", type=int, default=None,
                     help="cap of stars per galaxy (generator default)")
    syn.set_defaults(func=run_synthetic)

    nih = actions.add_parser("nihao", help="read a folder of NIHAO star files (.npy)")
    nih.add_argument("folder", type=Path, help="folder of <prefix>_<id>_<Mdm>.npy files")
    nih.add_argument("-o", "--output", type=Path, required=True, help="suite file to write")
    nih.add_argument("--pattern", default="*.npy", help="glob pattern of the files (*.npy)")
    nih.add_argument("--r-percentile", type=_float_or_none, default=95.0,
                     help="radius percentile cut, or 'none' (95)")
    nih.add_argument("--r-cap", type=_float_or_none, default=27.7,
                     help="cap of the radius cut in kpc, or 'none' (27.7)")
    nih.add_argument("--n-highest-z", type=int, default=10,
                     help="drop this many stars with the highest Z (10)")
    nih.add_argument("--feh-min", type=_float_or_none, default=-8.0,
                     help="lowest [Fe/H] kept in dex, or 'none' (-8)")
    nih.add_argument("--ofe-min", type=_float_or_none, default=-1.0,
                     help="lowest [O/Fe] kept in dex, or 'none' (-1)")
    nih.add_argument("--z-min", type=_float_or_none, default=None,
                     help="lowest Z kept, or 'none' (none)")
    nih.add_argument("--min-stars", type=int, default=500,
                     help="leave out galaxies with fewer stars after cleaning (500)")
    nih.add_argument("--no-align", action="store_true",
                     help="keep the files' orientation (no spin / major-axis rotation)")
    nih.set_defaults(func=run_nihao)

    info = actions.add_parser("info", help="print the galaxies and conditions of a suite file")
    info.add_argument("path", type=Path, help="suite file")
    info.set_defaults(func=run_info)


def run_synthetic(args: argparse.Namespace) -> int:
    """Draw a synthetic suite and write it."""
    from ..data import GalaxySuite

    options = {
        key: getattr(args, key)
        for key in ("max_total_stars", "min_stars", "max_stars_per_galaxy")
        if getattr(args, key) is not None
    }
    suite = GalaxySuite.synthetic(n_galaxies=args.n_galaxies, seed=args.seed, **options)
    suite.write(args.output)
    print(f"wrote {args.output}: {len(suite)} synthetic galaxies, {suite.n_stars} stars "
          f"(seed {args.seed})")
    return 0


def run_nihao(args: argparse.Namespace) -> int:
    """Read NIHAO star files with the paper's cleaning and write a suite."""
    from ..data import read_nihao

    suite = read_nihao(
        args.folder,
        pattern=args.pattern,
        r_percentile=args.r_percentile,
        r_cap=args.r_cap,
        n_highest_z=args.n_highest_z,
        feh_min=args.feh_min,
        ofe_min=args.ofe_min,
        z_min=args.z_min,
        min_stars=args.min_stars,
        align_spin=not args.no_align,
        align_major_axis=not args.no_align,
    )
    suite.write(args.output)
    info = suite.meta["nihao"]
    print(f"read {info['n_files']} files from {args.folder}; wrote {args.output}: "
          f"{len(suite)} galaxies, {suite.n_stars} stars")
    for left in info["left_out"]:
        print(f"  left out {left['id']} ({left['file']}): {left['n_stars']} stars after cleaning")
    return 0


def format_info(suite, path: Path | str = "", truth_stored: bool | None = None) -> str:
    """A plain-text summary of a suite: metadata, then one row per galaxy with its conditions."""
    if truth_stored is None:
        truth_stored = suite.truth is not None
    meta = suite.meta
    lines = [
        f"suite {path}".rstrip(),
        f"  source: {meta.get('source', '?')}   created: {meta.get('created', '?')}   "
        f"package version: {meta.get('package_version', '?')}   seed: {meta.get('seed', '-')}",
        f"  {len(suite)} galaxies, {suite.n_stars} stars, {len(suite.holdout_ids)} held out, "
        f"exact truth: {'yes' if truth_stored else 'no'}",
    ]
    names = suite.condition_names
    heads = ["galaxy", "n_stars"]
    for name in names:
        unit = condition_column(name).unit.to_string()
        heads.append(f"{name} [{unit}]" if unit else name)
    heads.append("held out")
    held = set(suite.holdout_ids)
    rows = []
    for g in suite:
        row = [g.id, str(g.n_stars)]
        row += [f"{g.conditions[n].value:.5g}" for n in names]
        row.append("yes" if g.id in held else "")
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(heads)]
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def run_info(args: argparse.Namespace) -> int:
    """Print the galaxies and conditions of a suite file."""
    import h5py

    from ..data import GalaxySuite

    suite = GalaxySuite.read(args.path, load_truth=False)
    with h5py.File(args.path, "r") as f:
        truth_stored = "truth" in f.attrs
    print(format_info(suite, args.path, truth_stored=truth_stored))
    return 0
