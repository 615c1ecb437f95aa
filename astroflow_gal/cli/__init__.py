"""The ``astroflow-gal`` command line: parses, calls the library, reports progress."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each entry adds one sub-command: (module, function taking the sub-parsers object).
_COMMAND_MODULES = (
    "astroflow_gal.cli.crossval",
    "astroflow_gal.cli.demo",
    "astroflow_gal.cli.ensemble",
    "astroflow_gal.cli.evaluate",
    "astroflow_gal.cli.observe",
    "astroflow_gal.cli.profiles",
    "astroflow_gal.cli.suite",
    "astroflow_gal.cli.train",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``astroflow-gal`` with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="astroflow-gal",
        description="Learned extended distribution functions of galaxies (GalacticFlow).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, KeyError) as err:
        print(f"astroflow-gal {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
