"""Safe files: atomic writes, and HDF5 files of arrays plus JSON metadata (never pickle).

Every file the package writes goes through :func:`atomic_path`: the content is written to a
temporary file in the destination folder, flushed to disk, and renamed over the final name, so an
interrupted write never leaves a half file under that name and the previous version stays intact.

Nested structures of tensors, arrays and JSON values (model weights, optimizer states, random
number generator states) are stored with :func:`write_tree` / :func:`read_tree`: every array
becomes an HDF5 dataset and the rest of the structure is a JSON attribute pointing at them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = [
    "FileFormatError",
    "atomic_path",
    "open_hdf5",
    "check_format",
    "flatten_tree",
    "unflatten_tree",
    "write_tree",
    "read_tree",
]


class FileFormatError(ValueError):
    """A file is not what it should be: not HDF5, truncated, foreign, newer or corrupt."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        Final file name. Its folder must exist.

    Yields
    ------
    pathlib.Path
        Where to write. The file is fsynced and renamed over ``path`` when the block ends without
        an exception; on an exception it is removed and ``path`` is untouched.
    """
    final = Path(path)
    folder = final.parent if str(final.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} of {final} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file readable by its owner only; give it the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        _fsync_dir(folder)
    finally:
        if tmp.exists():
            tmp.unlink()


# -- nested structures <-> (arrays, JSON) ------------------------------------------------------
_ARRAY_KEY = "__array__"
_TUPLE_KEY = "__tuple__"


def flatten_tree(tree: Any, prefix: str = "") -> tuple[Any, dict[str, np.ndarray]]:
    """Split a nested structure into a JSON-able skeleton and a flat dict of arrays.

    Tensors and arrays are replaced by ``{"__array__": key}``; dict keys become strings (integer
    keys are kept as ``"int:<n>"`` so they come back as integers); tuples are tagged.
    """
    arrays: dict[str, np.ndarray] = {}
    # A tensor exists only once torch is imported: files without tensors never load torch.
    torch = sys.modules.get("torch")

    def walk(obj: Any, key: str) -> Any:
        if torch is not None and isinstance(obj, torch.Tensor):
            arrays[key] = obj.detach().cpu().numpy()
            return {_ARRAY_KEY: key, "torch": str(obj.dtype)}
        if isinstance(obj, np.ndarray):
            arrays[key] = obj
            return {_ARRAY_KEY: key}
        if isinstance(obj, Mapping):
            out = {}
            for k, v in obj.items():
                name = f"int:{k}" if isinstance(k, int) else str(k)
                out[name] = walk(v, f"{key}/{name}" if key else name)
            return out
        if isinstance(obj, tuple):
            return {_TUPLE_KEY: [walk(v, f"{key}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [walk(v, f"{key}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, np.generic):
            return obj.item()
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"cannot store {type(obj).__name__} at {key or 'top level'}")

    return walk(tree, prefix), arrays


def unflatten_tree(skeleton: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Inverse of :func:`flatten_tree`: tensors come back as tensors of their original dtype."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            if _ARRAY_KEY in obj:
                value = arrays[obj[_ARRAY_KEY]]
                if "torch" in obj:
                    import torch

                    return torch.from_numpy(np.array(value))
                return np.array(value)
            if _TUPLE_KEY in obj:
                return tuple(walk(v) for v in obj[_TUPLE_KEY])
            return {
                (int(k[4:]) if k.startswith("int:") else k): walk(v) for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(skeleton)


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 file for reading, with clear errors.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    FileFormatError
        If it is not HDF5 or is truncated.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise FileFormatError(
            f"{path}: not a readable HDF5 file (truncated or foreign?): {err}"
        ) from err


def check_format(
    f: h5py.File,
    path: str | os.PathLike,
    format_name: str,
    max_version: int,
    what: str | None = None,
) -> int:
    """Check the ``format`` and ``format_version`` attributes at the root of an HDF5 file.

    Parameters
    ----------
    f : h5py.File
        The open file.
    path : str or path-like
        Its name, for the messages.
    format_name : str
        Expected value of the ``format`` attribute.
    max_version : int
        Newest format version this code understands (versions start at 1).
    what : str, optional
        What the file should be, for the messages (default: ``format_name``).

    Returns
    -------
    int
        The file's format version.

    Raises
    ------
    FileFormatError
        If the format is another one, or the version is newer than ``max_version`` or invalid.
    """
    label = f"astroflow_gal {what}" if what else format_name
    what = what or format_name
    found = f.attrs.get("format")
    if isinstance(found, bytes):
        found = found.decode("utf-8")
    if found != format_name:
        raise FileFormatError(
            f"{path}: not an {label} file (format attribute {found!r}, expected "
            f"{format_name!r})"
        )
    try:
        version = int(f.attrs.get("format_version", -1))
    except (TypeError, ValueError):
        version = -1
    if version > max_version:
        raise FileFormatError(
            f"{path}: {what} format version {version} is newer than this astroflow_gal "
            f"understands ({max_version}); upgrade the package"
        )
    if version < 1:
        raise FileFormatError(f"{path}: invalid {what} format version {version}")
    return version


def write_tree(
    path: str | os.PathLike,
    tree: Mapping[str, Any],
    *,
    format_name: str,
    format_version: int,
    compression: str | None = None,
) -> None:
    """Write a nested structure to an HDF5 file atomically.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    tree : mapping
        Nested dicts/lists/tuples of tensors, arrays and JSON values.
    format_name, format_version : str, int
        Stored as attributes and checked by :func:`read_tree`.
    compression : str, optional
        h5py compression filter for the datasets (e.g. ``"gzip"``).
    """
    skeleton, arrays = flatten_tree(tree)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = format_name
            f.attrs["format_version"] = int(format_version)
            f.attrs["tree"] = json.dumps(skeleton)
            for key, value in arrays.items():
                f.create_dataset(
                    f"arrays/{key}",
                    data=value,
                    compression=compression if value.size > 16 else None,
                )


def read_tree(
    path: str | os.PathLike, *, format_name: str, max_version: int
) -> tuple[Any, int]:
    """Read a file written by :func:`write_tree`.

    Parameters
    ----------
    path : str or path-like
        File to read.
    format_name : str
        Expected format name; another one raises :class:`FileFormatError`.
    max_version : int
        Newest format version this code understands.

    Returns
    -------
    tree : Any
        The nested structure.
    version : int
        Format version of the file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    FileFormatError
        If the file is not HDF5, truncated, of another format, newer, or corrupt.
    """
    path = Path(path)
    with open_hdf5(path) as f:
        version = check_format(f, path, format_name, max_version)
        try:
            skeleton = json.loads(f.attrs["tree"])
            arrays = {}
            if "arrays" in f:
                f["arrays"].visititems(
                    lambda name, obj: arrays.__setitem__(name, obj[()])
                    if isinstance(obj, h5py.Dataset)
                    else None
                )
            tree = unflatten_tree(skeleton, arrays)
        except (KeyError, OSError, ValueError, json.JSONDecodeError) as err:
            raise FileFormatError(f"{path}: corrupt {format_name} file: {err}") from err
    return tree, version
