"""Write the minimal intersphinx inventories that the documentation build reads offline.

The build machines reach package registries only, so the projects' own ``objects.inv`` files cannot
be downloaded there. These inventories list, in Sphinx's inventory format (version 2), the objects
that our pages and docstrings refer to, with their addresses in each project's documentation.
Add an entry here when a docstring names a new outside object, then run::

    python docs/_intersphinx/make_inventories.py
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# project -> (version, [(name, domain:role, uri)]); a uri ending in "$" ends with the name.
INVENTORIES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "python": ("3", [
        ("bltin-boolean-values", "std:label", "library/stdtypes.html#bltin-boolean-values"),
        ("sequence", "std:term", "glossary.html#term-sequence"),
        ("iterable", "std:term", "glossary.html#term-iterable"),
        ("mapping", "std:term", "glossary.html#term-mapping"),
        ("path-like object", "std:term", "glossary.html#term-path-like-object"),
        ("callable", "std:term", "glossary.html#term-callable"),
        ("None", "py:data", "library/constants.html#$"),
        ("True", "py:data", "library/constants.html#$"),
        ("False", "py:data", "library/constants.html#$"),
        ("int", "py:class", "library/functions.html#$"),
        ("float", "py:class", "library/functions.html#$"),
        ("bool", "py:class", "library/functions.html#$"),
        ("object", "py:class", "library/functions.html#$"),
        ("str", "py:class", "library/stdtypes.html#$"),
        ("dict", "py:class", "library/stdtypes.html#$"),
        ("list", "py:class", "library/stdtypes.html#$"),
        ("tuple", "py:class", "library/stdtypes.html#$"),
        ("bytes", "py:class", "library/stdtypes.html#$"),
        ("slice", "py:class", "library/functions.html#$"),
        ("len", "py:function", "library/functions.html#$"),
        ("min", "py:function", "library/functions.html#$"),
        ("max", "py:function", "library/functions.html#$"),
        ("warnings", "py:module", "library/warnings.html#module-$"),
        ("pathlib.Path", "py:class", "library/pathlib.html#$"),
        ("os.PathLike", "py:class", "library/os.html#$"),
        ("logging.Logger", "py:class", "library/logging.html#$"),
        ("collections.abc.Mapping", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Sequence", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Iterator", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Iterable", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Callable", "py:class", "library/collections.abc.html#$"),
        ("typing.Any", "py:data", "library/typing.html#$"),
        ("Exception", "py:exception", "library/exceptions.html#$"),
        ("ValueError", "py:exception", "library/exceptions.html#$"),
        ("TypeError", "py:exception", "library/exceptions.html#$"),
        ("KeyError", "py:exception", "library/exceptions.html#$"),
        ("OSError", "py:exception", "library/exceptions.html#$"),
        ("FileNotFoundError", "py:exception", "library/exceptions.html#$"),
        ("PermissionError", "py:exception", "library/exceptions.html#$"),
        ("RuntimeError", "py:exception", "library/exceptions.html#$"),
        ("ImportError", "py:exception", "library/exceptions.html#$"),
        ("Warning", "py:exception", "library/exceptions.html#$"),
        ("UserWarning", "py:exception", "library/exceptions.html#$"),
        ("RuntimeWarning", "py:exception", "library/exceptions.html#$"),
    ]),
    "numpy": ("stable", [
        ("array_like", "std:term", "glossary.html#term-array_like"),
        ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#$"),
        ("numpy.dtype", "py:class", "reference/generated/numpy.dtype.html#$"),
        ("numpy.float32", "py:class", "reference/arrays.scalars.html#$"),
        ("numpy.float64", "py:class", "reference/arrays.scalars.html#$"),
        ("numpy.int64", "py:class", "reference/arrays.scalars.html#$"),
        ("numpy.random.Generator", "py:class", "reference/random/generator.html#$"),
        ("numpy.random.default_rng", "py:function",
         "reference/random/generator.html#$"),
        ("numpy.histogram", "py:function", "reference/generated/numpy.histogram.html#$"),
    ]),
    "astropy": ("stable", [
        ("astropy.units.Quantity", "py:class", "api/astropy.units.Quantity.html#$"),
        ("astropy.units.Unit", "py:class", "api/astropy.units.Unit.html#$"),
        ("astropy.units.UnitBase", "py:class", "api/astropy.units.UnitBase.html#$"),
        ("astropy.units.UnitConversionError", "py:exception",
         "api/astropy.units.UnitConversionError.html#$"),
        ("astropy.units.UnitsError", "py:exception", "api/astropy.units.UnitsError.html#$"),
        ("astropy.table.QTable", "py:class", "api/astropy.table.QTable.html#$"),
        ("astropy.table.Table", "py:class", "api/astropy.table.Table.html#$"),
        ("astropy.table.Row", "py:class", "api/astropy.table.Row.html#$"),
        ("astropy.table.Column", "py:class", "api/astropy.table.Column.html#$"),
        ("astropy.coordinates.SkyCoord", "py:class", "api/astropy.coordinates.SkyCoord.html#$"),
        ("astropy.coordinates.BaseCoordinateFrame", "py:class",
         "api/astropy.coordinates.BaseCoordinateFrame.html#$"),
        ("astropy.coordinates.baseframe.BaseCoordinateFrame", "py:class",
         "api/astropy.coordinates.BaseCoordinateFrame.html"
         "#astropy.coordinates.BaseCoordinateFrame"),
        ("astropy.coordinates.Galactocentric", "py:class",
         "api/astropy.coordinates.Galactocentric.html#$"),
        ("astropy.coordinates.ICRS", "py:class", "api/astropy.coordinates.ICRS.html#$"),
        ("astropy.coordinates.CartesianRepresentation", "py:class",
         "api/astropy.coordinates.CartesianRepresentation.html#$"),
        ("astropy.coordinates.CartesianDifferential", "py:class",
         "api/astropy.coordinates.CartesianDifferential.html#$"),
        ("astropy.coordinates.Distance", "py:class", "api/astropy.coordinates.Distance.html#$"),
        ("astropy.cosmology.Cosmology", "py:class", "api/astropy.cosmology.Cosmology.html#$"),
    ]),
    "torch": ("stable", [
        ("torch.Tensor", "py:class", "tensors.html#$"),
        ("torch.device", "py:class", "tensor_attributes.html#$"),
        ("torch.dtype", "py:class", "tensor_attributes.html#$"),
        ("torch.Generator", "py:class", "generated/torch.Generator.html#$"),
        ("torch.nn.Module", "py:class", "generated/torch.nn.Module.html#$"),
        ("torch.nn.modules.module.Module", "py:class",
         "generated/torch.nn.Module.html#torch.nn.Module"),
        ("torch.nn.Parameter", "py:class", "generated/torch.nn.parameter.Parameter.html#$"),
        ("torch.optim.Optimizer", "py:class", "optim.html#$"),
        ("torch.autograd.grad", "py:function", "generated/torch.autograd.grad.html#$"),
        ("torch.distributed", "py:module", "distributed.html#module-$"),
    ]),
    "matplotlib": ("stable", [
        ("matplotlib.figure.Figure", "py:class", "api/_as_gen/matplotlib.figure.Figure.html#$"),
        ("matplotlib.axes.Axes", "py:class", "api/_as_gen/matplotlib.axes.Axes.html#$"),
    ]),
    "h5py": ("stable", [
        ("h5py.File", "py:class", "high/file.html#$"),
        ("h5py.Group", "py:class", "high/group.html#$"),
        ("h5py.Dataset", "py:class", "high/dataset.html#$"),
    ]),
    "xarray": ("stable", [
        ("xarray.Dataset", "py:class", "generated/xarray.Dataset.html#$"),
        ("xarray.DataArray", "py:class", "generated/xarray.DataArray.html#$"),
    ]),
}


def write_inventory(project: str, version: str, entries: list[tuple[str, str, str]]) -> Path:
    """Write ``<project>.inv`` beside this script.

    Parameters
    ----------
    project : str
        Project name (also the file's stem).
    version : str
        Version string recorded in the header.
    entries : list of tuple
        ``(name, "domain:role", uri)``; a uri ending in ``$`` ends with the name.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in sorted(entries))
    path = HERE / f"{project}.inv"
    path.write_bytes(header.encode() + zlib.compress(body.encode(), 9))
    return path


def main() -> None:
    """Write every inventory."""
    for project, (version, entries) in INVENTORIES.items():
        print(write_inventory(project, version, entries))


if __name__ == "__main__":
    main()
