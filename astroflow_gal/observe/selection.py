"""Selection functions of mock catalogues: sky, distance, parallax S/N, magnitude, subsampling.

Sky and distance cuts act on the true positions; the parallax signal-to-noise cut acts on the
observed parallax over its error (as in a real catalogue); the magnitude cut on the observed
magnitude; random subsampling keeps each star with a fixed probability, drawn from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, SkyCoord
from astropy.table import QTable

from ._checks import quantity, quantity_record

__all__ = ["Selection"]


@dataclass(frozen=True)
class Selection:
    """Which stars enter a mock catalogue.

    Parameters
    ----------
    cone : tuple of (astropy.coordinates.SkyCoord, astropy.units.Quantity), optional
        Keep stars within a radius [angle] of a sky position (any celestial frame).
    min_abs_b : astropy.units.Quantity, optional
        Keep stars with Galactic latitude ``|b| >= min_abs_b`` [angle].
    min_distance, max_distance : astropy.units.Quantity, optional
        Keep stars with a true heliocentric distance in this range [length].
    min_parallax_over_error : float, optional
        Keep stars whose observed parallax over its error is at least this [dimensionless];
        needs a parallax error model.
    magnitude_range : astropy.units.Quantity, optional
        (bright, faint) limits on the observed magnitude column [mag]; needs a magnitude column.
    fraction : float, optional
        Keep each star that passes the cuts with this probability, in (0, 1] (random
        subsampling, seeded).
    """

    cone: tuple[Any, Any] | None = None
    min_abs_b: Any = None
    min_distance: Any = None
    max_distance: Any = None
    min_parallax_over_error: float | None = None
    magnitude_range: Any = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.cone is not None:
            try:
                centre, radius = self.cone
            except (TypeError, ValueError) as err:
                raise ValueError("selection.cone must be (SkyCoord, radius)") from err
            if not isinstance(centre, SkyCoord) or not centre.isscalar:
                raise TypeError("selection.cone's centre must be one astropy SkyCoord")
            radius = quantity("selection.cone radius", radius, u.deg, positive=True)
            set_(self, "cone", (centre, radius))
        if self.min_abs_b is not None:
            b = quantity("selection.min_abs_b", self.min_abs_b, u.deg, non_negative=True)
            if b > 90 * u.deg:
                raise ValueError(f"selection.min_abs_b must lie in [0, 90] deg, got {b}")
            set_(self, "min_abs_b", b)
        for name in ("min_distance", "max_distance"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, quantity(f"selection.{name}", value, u.kpc, non_negative=True))
        if (
            self.min_distance is not None
            and self.max_distance is not None
            and self.min_distance >= self.max_distance
        ):
            raise ValueError("selection.min_distance must be smaller than selection.max_distance")
        if self.min_parallax_over_error is not None:
            value = float(self.min_parallax_over_error)
            if not np.isfinite(value):
                raise ValueError("selection.min_parallax_over_error must be finite")
            set_(self, "min_parallax_over_error", value)
        if self.magnitude_range is not None:
            mags = quantity("selection.magnitude_range", self.magnitude_range, u.mag, shape=(2,))
            if mags[0] >= mags[1]:
                raise ValueError(
                    f"selection.magnitude_range must be (bright, faint) with bright < faint, "
                    f"got {mags}"
                )
            set_(self, "magnitude_range", mags)
        if self.fraction is not None:
            value = float(self.fraction)
            if not 0 < value <= 1:
                raise ValueError(f"selection.fraction must lie in (0, 1], got {value}")
            set_(self, "fraction", value)

    def record(self) -> dict[str, Any]:
        """The cuts as JSON-friendly records (None for cuts not made)."""
        cone = None
        if self.cone is not None:
            centre = self.cone[0].transform_to(ICRS())
            cone = {
                "ra": quantity_record(centre.ra.to(u.deg)),
                "dec": quantity_record(centre.dec.to(u.deg)),
                "radius": quantity_record(self.cone[1]),
            }
        def rec(q: Any) -> Any:
            return None if q is None else quantity_record(q)
        return {
            "cone": cone,
            "min_abs_b": rec(self.min_abs_b),
            "min_distance": rec(self.min_distance),
            "max_distance": rec(self.max_distance),
            "min_parallax_over_error": self.min_parallax_over_error,
            "magnitude_range": rec(self.magnitude_range),
            "fraction": self.fraction,
        }

    def mask(
        self, catalogue: QTable, magnitude: str | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, int]]:
        """Which rows pass, and how many stars are left after each cut.

        Parameters
        ----------
        catalogue : astropy.table.QTable
            The catalogue with noise (ra, dec [deg], b [deg], distance [kpc], parallax and
            parallax_error [mas], the magnitude column [mag]).
        magnitude : str, optional
            Name of the magnitude column.
        rng : numpy.random.Generator
            Draws one uniform number per row for the subsampling (always, so that the other cuts
            do not change which stars a seed keeps).

        Returns
        -------
        mask : numpy.ndarray of bool
            Rows that pass every cut.
        counts : dict of str to int
            Stars left after each cut, in order.
        """
        n = len(catalogue)
        keep = np.ones(n, dtype=bool)
        counts = {"input": n}
        if self.cone is not None:
            centre, radius = self.cone
            stars = SkyCoord(ra=catalogue["ra"], dec=catalogue["dec"], frame=ICRS())
            keep &= stars.separation(centre.transform_to(ICRS())) <= radius
            counts["cone"] = int(keep.sum())
        if self.min_abs_b is not None:
            keep &= np.abs(catalogue["b"]) >= self.min_abs_b
            counts["min_abs_b"] = int(keep.sum())
        if self.min_distance is not None:
            keep &= catalogue["distance"] >= self.min_distance
            counts["min_distance"] = int(keep.sum())
        if self.max_distance is not None:
            keep &= catalogue["distance"] <= self.max_distance
            counts["max_distance"] = int(keep.sum())
        if self.min_parallax_over_error is not None:
            if "parallax_error" not in catalogue.colnames:
                raise ValueError(
                    "selection.min_parallax_over_error needs a parallax error model: "
                    "pass errors={'parallax': ...}"
                )
            err = catalogue["parallax_error"].to_value(u.mas)
            plx = catalogue["parallax"].to_value(u.mas)
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = np.where(err > 0, plx / err, np.where(plx > 0, np.inf, -np.inf))
            keep &= snr >= self.min_parallax_over_error
            counts["min_parallax_over_error"] = int(keep.sum())
        if self.magnitude_range is not None:
            if magnitude is None:
                raise ValueError(
                    "selection.magnitude_range needs a magnitude column: pass magnitude=..."
                )
            mag = catalogue[magnitude].to_value(u.mag)
            bright, faint = self.magnitude_range.to_value(u.mag)
            keep &= (mag >= bright) & (mag <= faint)
            counts["magnitude_range"] = int(keep.sum())
        uniform = rng.random(n)
        if self.fraction is not None:
            keep &= uniform < self.fraction
            counts["fraction"] = int(keep.sum())
        return keep, counts
