"""Lazy public names of a package: imported from their submodule on first use.

A package lists ``{public name: submodule}`` in a dict and takes its module-level ``__getattr__``
and ``__dir__`` from :func:`lazy_exports`, so that importing the package stays light, optional
partners load only when used, and ``dir()`` (tab completion) shows every public name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], also: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package with lazily imported public names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of str to str
        Public name -> submodule (relative to ``package``, dotted) that defines it.
    also : iterable of str
        Further names ``dir()`` lists (e.g. ``"__version__"``).

    Returns
    -------
    getattr, dir : callables
        To assign to the package's ``__getattr__`` and ``__dir__``.
    """
    listed = sorted(set(exports) | set(also))

    def __getattr__(name: str) -> Any:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(f".{module}", package), name)

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
