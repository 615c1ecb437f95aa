"""Galaxy suites: ordered sets of galaxies with metadata, an optional exact truth and held-out ids.

A :class:`~astroflow_gal.data.galaxy.Galaxy` holds one galaxy's stars (an astropy ``QTable`` with
the schema's star columns, float64, schema units) and its conditions (scalar Quantities). A
:class:`GalaxySuite` is an ordered set of galaxies with suite metadata, optionally an exact
``truth`` density (synthetic suites) and a set of held-out galaxy ids. Suites are stored in HDF5 by
:meth:`GalaxySuite.write` and read back by :meth:`GalaxySuite.read`; ``docs/data.md`` describes the
file layout.

The sources of galaxies sit below this module and know nothing of suites:
:func:`~astroflow_gal.data.synthetic.synthetic_galaxies` and
:func:`~astroflow_gal.data.nihao.nihao_galaxies` return galaxies, which
:func:`make_synthetic_suite` and :func:`read_nihao` (and ``GalaxySuite.synthetic`` /
``GalaxySuite.from_nihao``) put into a suite.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import h5py
import numpy as np
from astropy.table import QTable

from .._version import __version__
from ..io import FileFormatError, atomic_path, check_format, open_hdf5
from .galaxy import Galaxy, NonFiniteRowsWarning, nonfinite_rows
from .nihao import nihao_galaxies
from .schema import CONDITION_NAMES, STAR_NAMES, condition_column, star_column
from .synthetic import SyntheticTruth, synthetic_galaxies

__all__ = [
    "Galaxy",
    "GalaxySuite",
    "SuiteFileError",
    "NonFiniteRowsWarning",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "make_synthetic_suite",
    "read_nihao",
]

FORMAT_NAME = "astroflow_gal.GalaxySuite"
"""Value of the ``format`` attribute at the root of a suite file."""
FORMAT_VERSION = 1
"""Newest suite-file layout this version of the package writes and reads."""

_MASS_DATASET = "particle_mass"
_CHUNK_ROWS = 65_536


class SuiteFileError(FileFormatError):
    """A galaxy-suite file cannot be read: not HDF5, truncated, foreign, or inconsistent."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, u.Quantity):
        return {"value": np.asarray(obj.value).tolist(), "unit": obj.unit.to_string()}
    if isinstance(obj, (Path, u.UnitBase)):
        return str(obj)
    raise TypeError(f"metadata value of type {type(obj).__name__} cannot be stored as JSON")


def _to_json(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


# --------------------------------------------------------------------------------------------
# GalaxySuite
# --------------------------------------------------------------------------------------------


class GalaxySuite:
    """An ordered set of galaxies with metadata, an optional exact truth and held-out ids.

    Parameters
    ----------
    galaxies : sequence of Galaxy
        The galaxies, in order; ids must be unique and all galaxies must share one condition set.
    meta : dict, optional
        Suite metadata (JSON-serialisable): ``source``, ``provenance``, ``seed``, ... The keys
        ``created`` (ISO 8601 UTC) and ``package_version`` are filled in when absent.
    truth : object, optional
        The exact density the stars were drawn from (synthetic suites), with
        ``log_prob(stars, galaxy_id)`` and ``sample(n, galaxy_id, seed)``.
    holdout_ids : sequence of str, optional
        Ids of galaxies held out from training (see :meth:`split`).
    """

    def __init__(
        self,
        galaxies: Sequence[Galaxy],
        meta: dict | None = None,
        truth: Any = None,
        holdout_ids: Sequence[str] = (),
    ) -> None:
        galaxies = list(galaxies)
        for g in galaxies:
            if not isinstance(g, Galaxy):
                raise TypeError(f"suite members must be Galaxy objects, got {type(g).__name__}")
        ids = [g.id for g in galaxies]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"duplicate galaxy id(s) in suite: {dup}")
        if galaxies:
            names = list(galaxies[0].conditions)
            for g in galaxies[1:]:
                if list(g.conditions) != names:
                    raise ValueError(
                        f"galaxy {g.id!r} has conditions {list(g.conditions)}, "
                        f"galaxy {galaxies[0].id!r} has {names}"
                    )
        self._galaxies: list[Galaxy] = galaxies
        self._index: dict[str, int] = {gid: i for i, gid in enumerate(ids)}
        self.meta: dict = dict(meta or {})
        self.meta.setdefault(
            "created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        )
        self.meta.setdefault("package_version", __version__)
        self.truth = truth
        holdout = [str(h) for h in holdout_ids]
        unknown = [h for h in holdout if h not in self._index]
        if unknown:
            raise KeyError(f"held-out id(s) {unknown} are not in the suite")
        if len(set(holdout)) != len(holdout):
            raise ValueError(f"duplicate held-out ids: {holdout}")
        self.holdout_ids: tuple[str, ...] = tuple(holdout)

    # --- container protocol ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._galaxies)

    def __iter__(self) -> Iterator[Galaxy]:
        return iter(self._galaxies)

    def __contains__(self, galaxy_id: object) -> bool:
        return galaxy_id in self._index

    def __getitem__(self, galaxy_id: str | int) -> Galaxy:
        """The galaxy with this id (a str), or at this position (an int)."""
        if isinstance(galaxy_id, (int, np.integer)) and not isinstance(galaxy_id, bool):
            return self._galaxies[int(galaxy_id)]
        try:
            return self._galaxies[self._index[galaxy_id]]
        except KeyError:
            raise KeyError(f"no galaxy {galaxy_id!r} in the suite") from None

    def __repr__(self) -> str:
        src = self.meta.get("source", "?")
        return (
            f"GalaxySuite({len(self)} galaxies, {self.n_stars} stars, source={src!r}, "
            f"{len(self.holdout_ids)} held out, truth={'yes' if self.truth is not None else 'no'})"
        )

    # --- views ---------------------------------------------------------------------------------

    @property
    def ids(self) -> list[str]:
        """Galaxy ids in suite order."""
        return [g.id for g in self._galaxies]

    @property
    def condition_names(self) -> tuple[str, ...]:
        """The conditions every galaxy of the suite carries (schema order)."""
        if not self._galaxies:
            return CONDITION_NAMES
        return tuple(self._galaxies[0].conditions)

    @property
    def conditions(self) -> QTable:
        """Table with a ``galaxy_id`` column and one column per condition (schema units)."""
        table = QTable()
        table["galaxy_id"] = np.array(self.ids, dtype=str)
        for name in self.condition_names:
            unit = condition_column(name).unit
            values = np.array(
                [g.conditions[name].to_value(unit) for g in self._galaxies], dtype=np.float64
            )
            table[name] = values * unit
        return table

    @property
    def n_stars(self) -> int:
        """Total number of stars over all galaxies."""
        return int(sum(len(g.stars) for g in self._galaxies))

    def to_arrays(
        self,
        columns: Sequence[str] = STAR_NAMES,
        conditions: Sequence[str] = CONDITION_NAMES,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stars as one array, with each star's galaxy index and the condition array.

        Parameters
        ----------
        columns : sequence of str
            Star columns to stack (schema units: kpc, km/s, 1, dex, Gyr).
        conditions : sequence of str
            Conditions to stack (schema units: Msun, Gyr, 1).

        Returns
        -------
        stars : numpy.ndarray, shape (N, len(columns)), float64
            Stars of all galaxies in suite order, schema units.
        galaxy_index : numpy.ndarray, shape (N,), int64
            Position in the suite of each star's galaxy.
        conditions : numpy.ndarray, shape (G, len(conditions)), float64
            One row per galaxy, schema units.
        """
        columns = list(columns)
        for name in columns:
            star_column(name)
        conditions = list(conditions)
        for name in conditions:
            condition_column(name)
        counts = np.array([len(g.stars) for g in self._galaxies], dtype=np.int64)
        total = int(counts.sum())
        stars = np.empty((total, len(columns)), dtype=np.float64)
        start = 0
        for g, n in zip(self._galaxies, counts, strict=True):
            for j, name in enumerate(columns):
                stars[start : start + n, j] = g.stars[name].to_value(star_column(name).unit)
            start += n
        galaxy_index = np.repeat(np.arange(len(self._galaxies), dtype=np.int64), counts)
        cond = np.empty((len(self._galaxies), len(conditions)), dtype=np.float64)
        for i, g in enumerate(self._galaxies):
            cond[i] = g.condition_values(conditions)
        return stars, galaxy_index, cond

    # --- splits -------------------------------------------------------------------------------

    def _derived(
        self, galaxies: Sequence[Galaxy], holdout_ids: Sequence[str] = (), **meta_update: Any
    ) -> GalaxySuite:
        meta = copy.deepcopy(self.meta)
        meta.update(meta_update)
        return GalaxySuite(galaxies, meta=meta, truth=self.truth, holdout_ids=holdout_ids)

    def split(
        self,
        holdout: Sequence[str] | None = None,
        n_holdout: int | None = None,
        seed: int | None = None,
    ) -> GalaxySuite:
        """A copy of the suite with a set of held-out galaxies.

        Parameters
        ----------
        holdout : sequence of str, optional
            Explicit ids to hold out.
        n_holdout : int, optional
            Number of galaxies to hold out at random (needs ``seed``); not with ``holdout``.
        seed : int, optional
            Seed of the random choice (``numpy.random.default_rng(seed)``).

        Returns
        -------
        GalaxySuite
            Same galaxies, truth and metadata; ``holdout_ids`` set. Use :attr:`train` and
            :attr:`holdout` for the two parts.
        """
        if holdout is not None and n_holdout is not None:
            raise ValueError("give either explicit holdout ids or n_holdout, not both")
        if holdout is None and n_holdout is None:
            raise ValueError("give holdout ids or n_holdout (with a seed)")
        if holdout is not None:
            if isinstance(holdout, str):
                holdout = [holdout]
            ids = [str(h) for h in holdout]
        else:
            if seed is None:
                raise ValueError("a random split needs an explicit seed")
            ids = self._random_holdout(int(n_holdout), np.random.default_rng(seed))
        return self._derived(self._galaxies, holdout_ids=ids)

    def _random_holdout(self, n_holdout: int, rng: np.random.Generator) -> list[str]:
        if not 0 <= n_holdout < len(self):
            raise ValueError(
                f"n_holdout must be in [0, {len(self) - 1}] for a suite of {len(self)} galaxies, "
                f"got {n_holdout}"
            )
        chosen = np.sort(rng.choice(len(self), size=n_holdout, replace=False))
        return [self._galaxies[i].id for i in chosen]

    @property
    def train(self) -> GalaxySuite:
        """The galaxies not held out (all of them when none is held out).

        Same truth and metadata; ``meta["split"]`` records the part and the held-out ids.
        """
        held = set(self.holdout_ids)
        split = {"part": "train", "held_out": list(self.holdout_ids)}
        return self._derived([g for g in self._galaxies if g.id not in held], split=split)

    @property
    def holdout(self) -> GalaxySuite:
        """The held-out galaxies (an empty suite when none is held out)."""
        held = set(self.holdout_ids)
        split = {"part": "holdout", "held_out": list(self.holdout_ids)}
        return self._derived([g for g in self._galaxies if g.id in held], split=split)

    def cross_validation(
        self, n_models: int = 20, n_holdout: int = 5, seed: int = 0
    ) -> list[GalaxySuite]:
        """Seeded random leave-out sets, as in the paper (20 models, 5 held-out galaxies each).

        Parameters
        ----------
        n_models : int
            Number of splits.
        n_holdout : int
            Galaxies held out in each split (chosen without replacement within a split).
        seed : int
            Seed of one ``numpy.random.Generator`` that draws all splits in turn.

        Returns
        -------
        list of GalaxySuite
            ``n_models`` copies of the suite, each with its ``holdout_ids`` set and the split's
            number and seed recorded in ``meta["cross_validation"]``.
        """
        if n_models < 1:
            raise ValueError(f"n_models must be >= 1, got {n_models}")
        rng = np.random.default_rng(seed)
        out = []
        for k in range(n_models):
            ids = self._random_holdout(int(n_holdout), rng)
            info = {"model": k, "n_models": n_models, "n_holdout": n_holdout, "seed": seed}
            out.append(self._derived(self._galaxies, holdout_ids=ids, cross_validation=info))
        return out

    def subset(self, ids: Sequence[str]) -> GalaxySuite:
        """The galaxies with these ids, in the order given (held-out marks are kept)."""
        if isinstance(ids, str):
            ids = [ids]
        ids = list(ids)
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate ids in subset: {ids}")
        galaxies = [self[i] for i in ids]
        keep = set(ids)
        return self._derived(galaxies, holdout_ids=[h for h in self.holdout_ids if h in keep])

    # --- constructors -------------------------------------------------------------------------

    @classmethod
    def synthetic(cls, n_galaxies: int = 95, seed: int = 0, **kwargs: Any) -> GalaxySuite:
        """A synthetic NIHAO-like suite with an exact eDF (see :mod:`astroflow_gal.data.synthetic`).

        Parameters
        ----------
        n_galaxies : int
            Number of galaxies.
        seed : int
            Random seed.
        **kwargs
            Passed on to :func:`astroflow_gal.data.synthetic.synthetic_galaxies`.

        Returns
        -------
        GalaxySuite
            With ``truth`` a :class:`~astroflow_gal.data.synthetic.SyntheticTruth`.
        """
        galaxies, meta, truth = synthetic_galaxies(n_galaxies=n_galaxies, seed=seed, **kwargs)
        return cls(galaxies, meta=meta, truth=truth)

    @classmethod
    def synthetic_of(cls, meta: Mapping[str, Any]) -> GalaxySuite:
        """Rebuild the synthetic suite a model was trained on, from the model's ``meta``.

        Parameters
        ----------
        meta : mapping
            A model's metadata (``GalaxyModel.meta``): ``suite_seed`` and ``n_galaxies``, and
            the generator's ``suite_parameters`` (star counts per galaxy, mass range, ...).

        Returns
        -------
        GalaxySuite
            The same galaxies, stars and exact truth as the training suite (the generator is
            deterministic given its seed and parameters).

        Raises
        ------
        ValueError
            If the model was not trained on a synthetic suite or its meta lacks the seed or size.
        """
        source = meta.get("suite_source", "synthetic")
        if source not in (None, "synthetic"):
            raise ValueError(f"the model was trained on a {source!r} suite, not a synthetic one")
        missing = [k for k in ("suite_seed", "n_galaxies") if meta.get(k) is None]
        if missing:
            raise ValueError(f"the model's meta lacks {missing}: cannot rebuild its suite")
        params = dict(meta.get("suite_parameters") or {})
        params.pop("n_galaxies", None)
        return cls.synthetic(n_galaxies=int(meta["n_galaxies"]), seed=int(meta["suite_seed"]),
                             **params)

    @classmethod
    def from_nihao(cls, folder: str | os.PathLike, **cuts: Any) -> GalaxySuite:
        """Read the published NIHAO star files with the paper's cleaning cuts.

        Parameters
        ----------
        folder : str or path-like
            Folder of ``<prefix>_<id>_<Mdm>.npy`` files.
        **cuts
            ``pattern`` and the fields of :class:`~astroflow_gal.data.nihao.NihaoCuts`; see
            :func:`astroflow_gal.data.nihao.nihao_galaxies` for the file layout and the cuts.

        Returns
        -------
        GalaxySuite
        """
        galaxies, meta = nihao_galaxies(folder, **cuts)
        return cls(galaxies, meta=meta)

    # --- files --------------------------------------------------------------------------------

    def write(self, path: str | os.PathLike) -> None:
        """Write the suite to an HDF5 file, atomically (temp file + rename).

        Parameters
        ----------
        path : str or path-like
            Destination file. An interrupted write never leaves a partial file under this name.
        """
        path = Path(path)
        truth_json = None
        truth_type = None
        if self.truth is not None:
            to_json = getattr(self.truth, "to_json", None)
            if to_json is None:
                raise ValueError(
                    f"cannot write {path}: the suite's truth ({type(self.truth).__name__}) has no "
                    "to_json() method; write a copy without it (GalaxySuite(list(suite), "
                    "suite.meta, holdout_ids=suite.holdout_ids))"
                )
            truth_json = to_json()
            truth_type = f"{type(self.truth).__module__}.{type(self.truth).__qualname__}"
        meta_json = _to_json(self.meta)
        galaxy_meta = [_to_json(g.meta) for g in self._galaxies]
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                _write_suite(f, self, meta_json, galaxy_meta, truth_json, truth_type)

    @classmethod
    def read(cls, path: str | os.PathLike, load_truth: bool = True) -> GalaxySuite:
        """Read a suite written by :meth:`write`.

        Parameters
        ----------
        path : str or path-like
            The HDF5 suite file.
        load_truth : bool
            Rebuild the stored exact truth (synthetic suites); ``False`` skips it.

        Returns
        -------
        GalaxySuite

        Raises
        ------
        FileNotFoundError
            The file does not exist.
        SuiteFileError
            Not HDF5, truncated, not a suite file, a newer format, a missing column, a unit that
            cannot be converted to the schema's, or inconsistent contents.
        """
        path = Path(path)
        try:
            with open_hdf5(path) as f:
                check_format(f, path, FORMAT_NAME, FORMAT_VERSION, what="galaxy-suite")
                return _read_suite(f, path, load_truth)
        except (SuiteFileError, FileNotFoundError):
            raise
        except FileFormatError as err:
            raise SuiteFileError(str(err)) from None
        except (OSError, KeyError, RuntimeError) as err:
            raise SuiteFileError(
                f"{path}: cannot be read (truncated or damaged file?): {err}"
            ) from None


# --------------------------------------------------------------------------------------------
# HDF5 layout
# --------------------------------------------------------------------------------------------


def _write_column(group: h5py.Group, name: str, values: np.ndarray, unit: u.UnitBase) -> None:
    values = np.ascontiguousarray(values, dtype=np.float64)
    kwargs: dict[str, Any] = {}
    if values.size:
        kwargs = {
            "chunks": (min(values.shape[0], _CHUNK_ROWS),),
            "compression": "gzip",
            "compression_opts": 4,
            "shuffle": True,
            "fletcher32": True,
        }
    ds = group.create_dataset(name, data=values, **kwargs)
    ds.attrs["unit"] = u.Unit(unit).to_string()


def _write_suite(
    f: h5py.File,
    suite: GalaxySuite,
    meta_json: str,
    galaxy_meta: list[str],
    truth_json: str | None,
    truth_type: str | None,
) -> None:
    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["meta"] = meta_json
    f.attrs["galaxy_ids"] = json.dumps(suite.ids)
    f.attrs["holdout_ids"] = json.dumps(list(suite.holdout_ids))
    f.attrs["star_columns"] = json.dumps(list(STAR_NAMES))
    f.attrs["condition_names"] = json.dumps(list(suite.condition_names))
    if truth_json is not None:
        f.attrs["truth"] = truth_json
        f.attrs["truth_type"] = truth_type
    gals = f.create_group("galaxies")
    for i, (g, gmeta) in enumerate(zip(suite, galaxy_meta, strict=True)):
        grp = gals.create_group(f"{i:06d}")
        grp.attrs["id"] = g.id
        grp.attrs["meta"] = gmeta
        for name in STAR_NAMES:
            col = star_column(name)
            _write_column(grp, name, g.stars[name].to_value(col.unit), col.unit)
        if g.masses is not None:
            _write_column(grp, _MASS_DATASET, g.masses.to_value(u.Msun), u.Msun)
    cond = f.create_group("conditions")
    cond.create_dataset(
        "galaxy_id", data=np.array(suite.ids, dtype=object), dtype=h5py.string_dtype("utf-8")
    )
    for name in suite.condition_names:
        col = condition_column(name)
        values = np.array([g.conditions[name].to_value(col.unit) for g in suite], dtype=np.float64)
        ds = cond.create_dataset(name, data=values)
        ds.attrs["unit"] = u.Unit(col.unit).to_string()


def _attr_str(obj: h5py.HLObject, key: str, path: Path, where: str) -> str:
    if key not in obj.attrs:
        raise SuiteFileError(f"{path}: {where} lacks the attribute {key!r}")
    value = obj.attrs[key]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value)


def _attr_json(obj: h5py.HLObject, key: str, path: Path, where: str) -> Any:
    text = _attr_str(obj, key, path, where)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SuiteFileError(
            f"{path}: {where} attribute {key!r} is not valid JSON: {err}"
        ) from None


def _read_column(
    grp: h5py.Group, name: str, target: u.UnitBase, path: Path, where: str
) -> np.ndarray:
    if name not in grp:
        raise SuiteFileError(f"{path}: {where} is missing the column {name!r}")
    ds = grp[name]
    if not isinstance(ds, h5py.Dataset):
        raise SuiteFileError(f"{path}: {where}: column {name!r} is not a dataset")
    unit_str = _attr_str(ds, "unit", path, f"{where}: column {name!r}")
    try:
        unit = u.Unit(unit_str)
    except ValueError:
        raise SuiteFileError(
            f"{path}: {where}: column {name!r} has an unknown unit {unit_str!r}"
        ) from None
    if ds.ndim != 1 or ds.dtype.kind not in "fiu":
        raise SuiteFileError(
            f"{path}: {where}: column {name!r} must be a 1-D numeric dataset, "
            f"got shape {ds.shape} dtype {ds.dtype}"
        )
    values = np.asarray(ds[()], dtype=np.float64)
    if unit == target:
        return values
    try:
        return (values * unit).to_value(target)
    except u.UnitConversionError:
        raise SuiteFileError(
            f"{path}: {where}: column {name!r} has unit {unit_str!r}, incompatible with the "
            "schema unit "
            f"{u.Unit(target).to_string() or 'dimensionless'!r}"
        ) from None


def _read_suite(f: h5py.File, path: Path, load_truth: bool) -> GalaxySuite:
    meta = _attr_json(f, "meta", path, "the file")
    ids = _attr_json(f, "galaxy_ids", path, "the file")
    holdout_ids = _attr_json(f, "holdout_ids", path, "the file")
    cond_names = _attr_json(f, "condition_names", path, "the file")
    unknown = [c for c in cond_names if c not in CONDITION_NAMES]
    if unknown:
        raise SuiteFileError(f"{path}: unknown condition(s) {unknown}")
    if "galaxies" not in f or "conditions" not in f:
        missing = [k for k in ("galaxies", "conditions") if k not in f]
        raise SuiteFileError(f"{path}: the group(s) {missing} are missing")
    gals = f["galaxies"]
    cond = f["conditions"]
    if len(gals) != len(ids):
        raise SuiteFileError(f"{path}: {len(gals)} galaxy groups but {len(ids)} galaxy ids")
    if "galaxy_id" not in cond:
        raise SuiteFileError(f"{path}: the condition table is missing the column 'galaxy_id'")
    cond_ids = [s.decode() if isinstance(s, bytes) else str(s) for s in cond["galaxy_id"][()]]
    if cond_ids != ids:
        raise SuiteFileError(f"{path}: the condition table's galaxy ids differ from the galaxies")
    cond_values = {}
    for name in cond_names:
        values = _read_column(
            cond, name, condition_column(name).unit, path, "the condition table"
        )
        if values.shape != (len(ids),):
            raise SuiteFileError(f"{path}: conditions/{name} has {values.size} rows for {len(ids)}")
        if not np.all(np.isfinite(values)):
            raise SuiteFileError(f"{path}: conditions/{name} holds NaN or inf")
        cond_values[name] = values
    galaxies = []
    dropped: dict[str, int] = {}
    for i, gid in enumerate(ids):
        key = f"{i:06d}"
        if key not in gals:
            raise SuiteFileError(f"{path}: the group galaxies/{key} ({gid!r}) is missing")
        grp = gals[key]
        where = f"galaxy {gid!r} (group galaxies/{key})"
        if _attr_str(grp, "id", path, where) != gid:
            raise SuiteFileError(f"{path}: {where} carries a different id")
        gmeta = _attr_json(grp, "meta", path, where)
        arrays = {
            n: _read_column(grp, n, star_column(n).unit, path, where) for n in STAR_NAMES
        }
        lengths = {a.shape[0] for a in arrays.values()}
        masses = None
        if _MASS_DATASET in grp:
            masses = _read_column(grp, _MASS_DATASET, u.Msun, path, where)
            lengths.add(masses.shape[0])
        if len(lengths) != 1:
            raise SuiteFileError(f"{path}: {where} has columns of unequal length {lengths}")
        bad = nonfinite_rows(list(arrays.values()) + ([masses] if masses is not None else []))
        if bad.any():
            keep = ~bad
            arrays = {n: a[keep] for n, a in arrays.items()}
            masses = None if masses is None else masses[keep]
            dropped[gid] = int(bad.sum())
        stars = QTable({n: arrays[n] * star_column(n).unit for n in STAR_NAMES})
        conditions = {
            n: cond_values[n][i] * condition_column(n).unit for n in cond_names
        }
        galaxies.append(
            Galaxy(
                gid,
                stars,
                conditions,
                meta=gmeta,
                masses=None if masses is None else masses * u.Msun,
            )
        )
    if dropped:
        total = sum(dropped.values())
        detail = ", ".join(f"{k}: {v}" for k, v in dropped.items())
        warnings.warn(
            f"{path}: dropped {total} star row(s) holding NaN or inf ({detail}); "
            "the stored conditions were kept",
            NonFiniteRowsWarning,
            stacklevel=3,
        )
    truth = None
    if load_truth and "truth" in f.attrs:
        truth = _rebuild_truth(f, path)
    try:
        return GalaxySuite(galaxies, meta=meta, truth=truth, holdout_ids=holdout_ids)
    except (KeyError, ValueError, TypeError) as err:
        raise SuiteFileError(f"{path}: inconsistent suite: {err}") from None


def _rebuild_truth(f: h5py.File, path: Path) -> SyntheticTruth:
    text = _attr_str(f, "truth", path, "the file")
    try:
        return SyntheticTruth.from_json(text)
    except (ValueError, KeyError, TypeError) as err:
        raise SuiteFileError(f"{path}: the stored truth cannot be rebuilt: {err}") from None


# --------------------------------------------------------------------------------------------
# suites from the sources of galaxies
# --------------------------------------------------------------------------------------------


def make_synthetic_suite(n_galaxies: int = 95, seed: int = 0, **kwargs: Any) -> GalaxySuite:
    """A synthetic NIHAO-like suite with an exact eDF (same as :meth:`GalaxySuite.synthetic`).

    Parameters
    ----------
    n_galaxies, seed, **kwargs
        The arguments of :func:`astroflow_gal.data.synthetic.synthetic_galaxies`: the number of
        galaxies, the seed of everything, ``max_total_stars``, ``min_stars``,
        ``max_stars_per_galaxy``, ``log_mass_range`` [log10 Msun], ``spheroid_truncation``,
        ``id_prefix``.

    Returns
    -------
    GalaxySuite
        With ``truth`` a :class:`~astroflow_gal.data.synthetic.SyntheticTruth`.
    """
    return GalaxySuite.synthetic(n_galaxies=n_galaxies, seed=seed, **kwargs)


def read_nihao(folder: str | os.PathLike, **cuts: Any) -> GalaxySuite:
    """Read a folder of NIHAO star files into a suite (same as :meth:`GalaxySuite.from_nihao`).

    Parameters
    ----------
    folder : str or path-like
        Folder of ``<prefix>_<id>_<Mdm>.npy`` files.
    **cuts
        ``pattern`` and the fields of :class:`~astroflow_gal.data.nihao.NihaoCuts` (``r_cap`` in
        kpc, ``feh_min``/``ofe_min`` in dex, ...).

    Returns
    -------
    GalaxySuite
        Galaxies in file-name order; those left out are listed in ``meta["nihao"]["left_out"]``.
    """
    return GalaxySuite.from_nihao(folder, **cuts)
