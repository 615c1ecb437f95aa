"""Large samples on disk: streamed HDF5 files, shards of several processes, and reading them back.

Layout of a sample file: a group ``stars`` with one float64 dataset per star column (unit in its
``unit`` attribute) and the sample's metadata as JSON in the root attribute ``meta``. A sample made
by several processes is one file of virtual datasets over their shard files (kept beside it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from astropy.table import QTable

from .data import schema
from .io import FileFormatError, atomic_path, open_hdf5

__all__ = ["shard_path", "write_sample_file", "join_sample_shards", "read_sample"]

FORMAT_NAME = "astroflow_gal.Sample"
FORMAT_VERSION = 1


def shard_path(path: str | os.PathLike, rank: int, world_size: int) -> Path:
    """File name of one process's shard of the sample ``path``."""
    path = Path(path)
    return path.with_name(f"{path.name}.rank{rank}of{world_size}.h5")


def write_sample_file(
    path: str | os.PathLike,
    batches: Iterable[np.ndarray],
    n_rows: int,
    names: Sequence[str],
    meta: dict[str, Any],
    progress: bool = False,
) -> Path:
    """Stream row batches (each (n, len(names)), schema units) into an HDF5 sample, atomically.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    batches : iterable of numpy.ndarray
        Consecutive rows; together exactly ``n_rows``.
    n_rows : int
        Total number of rows.
    names : sequence of str
        Star column names (schema units are recorded).
    meta : dict
        JSON-able metadata.
    progress : bool
        Show a progress bar.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    # A small chunk cache: batches are written whole, so a cache per dataset only costs memory.
    with atomic_path(path) as tmp, h5py.File(tmp, "w", rdcc_nbytes=2**20) as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["meta"] = json.dumps(meta)
        group = f.create_group("stars")
        chunk = (min(max(n_rows, 1), 65_536),)
        datasets = []
        for name in names:
            ds = group.create_dataset(name, shape=(n_rows,), dtype="f8", chunks=chunk)
            ds.attrs["unit"] = str(schema.column(name).unit)
            datasets.append(ds)
        row = 0
        with tqdm(total=n_rows, unit="star", disable=not progress) as bar:
            for batch in batches:
                stop = row + batch.shape[0]
                if stop > n_rows:
                    raise ValueError(f"more than the announced {n_rows} rows")
                for i, ds in enumerate(datasets):
                    ds[row:stop] = batch[:, i]
                row = stop
                bar.update(batch.shape[0])
        if row != n_rows:
            raise ValueError(f"got {row} rows, announced {n_rows}")
    return path


def join_sample_shards(
    path: str | os.PathLike,
    n_rows: int,
    world_size: int,
    block: int,
    timeout: float = 3600.0,
) -> Path:
    """Join the shards of a multi-process sample into ``path`` as HDF5 virtual datasets.

    Shard ``r`` holds blocks ``r, r + W, r + 2W, ...`` of ``block`` rows each, in that order. Waits
    (up to ``timeout`` seconds) until every shard exists; shards are written atomically, so an
    existing shard is complete.
    """
    path = Path(path)
    shards = [shard_path(path, r, world_size) for r in range(world_size)]
    deadline = time.monotonic() + timeout
    while not all(s.exists() for s in shards):
        if time.monotonic() > deadline:
            missing = [str(s) for s in shards if not s.exists()]
            raise TimeoutError(f"shards never appeared: {missing}")
        time.sleep(0.2)
    with h5py.File(shards[0], "r") as f0:
        meta = json.loads(f0.attrs["meta"])
        names = list(f0["stars"])
        units = {n: f0["stars"][n].attrs["unit"] for n in names}
    meta = {k: v for k, v in meta.items() if k not in ("rank", "blocks")}
    n_blocks = -(-n_rows // block)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["meta"] = json.dumps(meta)
        group = f.create_group("stars")
        for name in names:
            layout = h5py.VirtualLayout(shape=(n_rows,), dtype="f8")
            offsets = [0] * world_size
            for b in range(n_blocks):
                r = b % world_size
                rows = min(n_rows, (b + 1) * block) - b * block
                with h5py.File(shards[r], "r") as fr:
                    shard_rows = fr["stars"][name].shape[0]
                # Relative file name: the shards stay beside the joined file.
                source = h5py.VirtualSource(shards[r].name, f"stars/{name}", shape=(shard_rows,))
                layout[b * block : b * block + rows] = source[offsets[r] : offsets[r] + rows]
                offsets[r] += rows
            ds = group.create_virtual_dataset(name, layout)
            ds.attrs["unit"] = units[name]
    return path


def read_sample(path: str | os.PathLike) -> QTable:
    """Read a sample file (single or joined shards) into a QTable with units and ``meta``."""
    path = Path(path)
    # Virtual datasets name their shards relative to the joined file; HDF5 looks for such
    # sources beside the file that holds the virtual dataset.
    with open_hdf5(path) as f:
        if f.attrs.get("format") != FORMAT_NAME:
            raise FileFormatError(f"{path}: not an astroflow_gal sample file")
        meta = json.loads(f.attrs["meta"])
        columns = {}
        for name in f["stars"]:
            columns[name] = f["stars"][name][()] * schema.column(name).unit
    table = QTable({n: columns[n] for n in schema.STAR_NAMES if n in columns})
    table.meta.update(meta)
    return table
