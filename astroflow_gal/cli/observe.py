"""``astroflow-gal observe``: mock observations of a galaxy drawn from a model.

``observe survey`` samples a Milky-Way analogue and writes a Gaia-like catalogue seen from the Sun
(FITS, ECSV or HDF5); ``observe ifu`` samples a galaxy and writes integral-field maps seen from
outside (netCDF). Both call :mod:`astroflow_gal.observe`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from ._common import add_condition_arguments, load_model, model_conditions
from ._common import say as _say

_CATALOGUE_SUFFIXES = (".fits", ".fit", ".ecsv", ".h5", ".hdf5")


def _model_arguments(p: argparse.ArgumentParser, default_n: int) -> None:
    p.add_argument("model", help="model file (.h5), or 'default' for the model shipped with "
                   "the package")
    p.add_argument("-n", "--n-stars", type=int, default=default_n,
                   help=f"stars drawn from the model (default {default_n:,})")
    p.add_argument("--seed", type=int, default=42,
                   help="seed of the sample, the errors and the subsampling (default 42)")
    add_condition_arguments(p)
    p.add_argument("--allow-extrapolation", action="store_true",
                   help="accept conditions far outside the training range")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``observe`` sub-command with its ``survey`` and ``ifu`` sub-commands."""
    p = sub.add_parser(
        "observe",
        help="mock observations: a Gaia-like catalogue or IFU maps of a sampled galaxy",
        description="Sample a galaxy from a model and observe it: from the Sun inside it "
        "(survey) or from outside (ifu).",
    )
    kinds = p.add_subparsers(dest="kind", required=True)

    s = kinds.add_parser(
        "survey",
        help="a Gaia-like catalogue of a Milky-Way analogue seen from the Sun",
        description="Sample a Milky-Way analogue, place the Sun in it and write a mock "
        "catalogue (ra, dec, l, b, parallax, proper motions, radial velocity, labels) with "
        "Gaussian errors and cuts. Every Galactocentric frame parameter is recorded in the "
        "file's metadata. The model has no photometry, so there are no magnitude cuts here.",
    )
    _model_arguments(s, 200_000)
    s.add_argument("-o", "--output", type=Path, required=True,
                   help="catalogue file: .fits, .ecsv or .h5")
    s.add_argument("--sun-R", type=float, default=8.122,
                   help="the Sun's cylindrical radius [kpc] (default 8.122)")
    s.add_argument("--sun-z", type=float, default=20.8,
                   help="the Sun's height towards the north Galactic pole [pc] (default 20.8)")
    s.add_argument("--sun-azimuth", type=float, default=0.0,
                   help="the Sun's azimuth in the galaxy frame, from +x towards the rotation "
                   "[deg] (default 0)")
    velocity = s.add_mutually_exclusive_group()
    velocity.add_argument("--sun-velocity", type=float, nargs=3, metavar=("VX", "VY", "VZ"),
                          default=None,
                          help="the Sun's Galactocentric velocity: towards the centre, along the "
                          "rotation, towards the north pole [km/s] (default astropy v4.0: "
                          "12.9 245.6 7.78)")
    velocity.add_argument("--co-rotating", action="store_true",
                          help="move the Sun with the analogue's mean rotation at sun-R plus "
                          "the Schoenrich et al. (2010) peculiar motion")
    s.add_argument("--parallax-error", type=float, default=None,
                   help="Gaussian parallax error [mas]")
    s.add_argument("--pm-error", type=float, default=None,
                   help="Gaussian error of each proper-motion component [mas/yr]")
    s.add_argument("--rv-error", type=float, default=None,
                   help="Gaussian radial-velocity error [km/s]")
    s.add_argument("--abundance-error", type=float, default=None,
                   help="Gaussian error of [Fe/H] and [O/Fe] [dex]")
    s.add_argument("--max-distance", type=float, default=None,
                   help="keep stars within this distance of the Sun [kpc]")
    s.add_argument("--min-parallax-over-error", type=float, default=None,
                   help="keep stars with parallax / parallax_error at least this "
                   "(needs --parallax-error)")
    s.add_argument("--min-abs-b", type=float, default=None,
                   help="keep stars with |b| at least this [deg]")
    s.add_argument("--fraction", type=float, default=None,
                   help="keep each remaining star with this probability (random subsampling)")
    s.set_defaults(func=run_survey)

    f = kinds.add_parser(
        "ifu",
        help="integral-field maps of a galaxy seen from outside",
        description="Sample a galaxy, incline it, place it at a distance and write maps of the "
        "surface density, line-of-sight velocity and dispersion, mean age, [Fe/H] and [O/Fe] "
        "to netCDF.",
    )
    _model_arguments(f, 200_000)
    f.add_argument("-o", "--output", type=Path, required=True, help="maps file (.nc)")
    f.add_argument("--distance", type=float, default=20.0,
                   help="distance to the galaxy [Mpc] (default 20)")
    f.add_argument("--inclination", type=float, default=60.0,
                   help="inclination in [0, 180]: 0 face-on, 90 edge-on [deg] (default 60)")
    f.add_argument("--position-angle", type=float, default=0.0,
                   help="position angle of the receding major axis, north through east [deg] "
                   "(default 0)")
    f.add_argument("--systemic-velocity", type=float, default=0.0,
                   help="the galaxy's line-of-sight velocity [km/s] (default 0)")
    f.add_argument("--pixel", type=float, default=1.0, help="pixel size [arcsec] (default 1)")
    f.add_argument("--fov", type=float, default=120.0,
                   help="side of the square field of view [arcsec] (default 120)")
    f.add_argument("--psf-fwhm", type=float, default=None,
                   help="FWHM of a Gaussian PSF [arcsec] (default none)")
    f.add_argument("--plot", type=Path, default=None, help="also save the maps as a PNG")
    f.set_defaults(func=run_ifu)


def _sample(args: argparse.Namespace) -> Any:
    if args.n_stars < 1:
        raise ValueError(f"-n must be a positive number of stars, got {args.n_stars}")
    model = load_model(args.model)
    conditions, described = model_conditions(args, model)
    _say(f"sampling {args.n_stars:,} stars with {described} (seed {args.seed}) ...")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stars = model.sample(args.n_stars, conditions, seed=args.seed,
                             progress=sys.stderr.isatty(),
                             allow_extrapolation=args.allow_extrapolation)
    for w in caught:
        _say(f"warning: {w.message}")
    return stars


def _check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"-o {path}: unknown format; use one of {', '.join(suffixes)}")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise FileNotFoundError(f"-o {path}: folder {path.parent} does not exist")


def run_survey(args: argparse.Namespace) -> int:
    """Sample the analogue, observe it from the Sun, write the catalogue."""
    import astropy.units as u

    from .. import observe

    _check_output(args.output, _CATALOGUE_SUFFIXES)
    if args.min_parallax_over_error is not None and args.parallax_error is None:
        raise ValueError("--min-parallax-over-error needs --parallax-error")
    errors: dict[str, Any] = {}
    for option, names, unit in (
        ("parallax_error", ("parallax",), u.mas),
        ("pm_error", ("pm_ra_cosdec", "pm_dec"), u.mas / u.yr),
        ("rv_error", ("radial_velocity",), u.km / u.s),
        ("abundance_error", ("feh", "ofe"), u.dex),
    ):
        value = getattr(args, option)
        if value is not None:
            if not value >= 0:
                raise ValueError(f"--{option.replace('_', '-')} must be >= 0, got {value}")
            errors.update({n: value * unit for n in names})
    selection = observe.Selection(
        min_abs_b=None if args.min_abs_b is None else args.min_abs_b * u.deg,
        max_distance=None if args.max_distance is None else args.max_distance * u.kpc,
        min_parallax_over_error=args.min_parallax_over_error,
        fraction=args.fraction,
    )
    place = dict(R=args.sun_R * u.kpc, z=args.sun_z * u.pc, azimuth=args.sun_azimuth * u.deg)
    stars = _sample(args)
    if args.co_rotating:
        sun = observe.SunPosition.co_rotating(stars, **place)
    elif args.sun_velocity is not None:
        sun = observe.SunPosition(velocity=args.sun_velocity * u.km / u.s, **place)
    else:
        sun = observe.SunPosition(**place)
    v = sun.velocity.to_value(u.km / u.s)
    _say(f"Sun at R = {sun.R:.4g}, z = {sun.z:.4g}, azimuth = {sun.azimuth:.4g}, "
         f"velocity ({v[0]:.2f}, {v[1]:.2f}, {v[2]:.2f}) km/s")
    catalogue = observe.survey(stars, sun, errors=errors, selection=selection, seed=args.seed)
    observe.write_catalogue(catalogue, args.output)
    counts = ", ".join(f"{k} {v:,}" for k, v in catalogue.meta["counts"].items())
    _say(f"stars left after each cut: {counts}")
    _say(f"wrote {len(catalogue):,} stars to {args.output}")
    _say(f"read it with astroflow_gal.observe.read_catalogue('{args.output}')")
    return 0


def run_ifu(args: argparse.Namespace) -> int:
    """Sample the galaxy, observe it from outside, write the maps (and a figure)."""
    import astropy.units as u

    from .. import observe

    _check_output(args.output, (".nc",))
    if args.plot is not None:
        _check_output(args.plot, (".png", ".pdf", ".svg"))
    geometry = dict(
        distance=args.distance * u.Mpc,
        inclination=args.inclination * u.deg,
        position_angle=args.position_angle * u.deg,
        systemic_velocity=args.systemic_velocity * u.km / u.s,
        pixel=args.pixel * u.arcsec,
        fov=args.fov * u.arcsec,
        psf_fwhm=None if args.psf_fwhm is None else args.psf_fwhm * u.arcsec,
    )
    # checks the geometry before sampling
    from astropy.table import QTable

    probe = QTable({c: [0.0] * (u.kpc if c in "xyz" else u.km / u.s)
                    for c in ("x", "y", "z", "vx", "vy", "vz")})
    observe.ifu_maps(probe, mass=1.0 * u.Msun, **geometry)
    stars = _sample(args)
    maps = observe.ifu_maps(stars, **geometry)
    observe.write_ifu_maps(maps, args.output)
    _say(f"maps of {maps.sizes['east']} x {maps.sizes['north']} pixels "
         f"({maps.attrs['pixel_physical']} per pixel); {maps.attrs['n_stars_in_field']:,} of "
         f"{maps.attrs['n_stars']:,} stars in the field")
    _say(f"wrote {args.output}")
    if args.plot is not None:
        import matplotlib.pyplot as plt

        fig = observe.plot_ifu_maps(maps, path=args.plot)
        plt.close(fig)
        _say(f"wrote {args.plot}")
    return 0
