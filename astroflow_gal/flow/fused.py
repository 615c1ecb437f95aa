"""The fused rational-quadratic spline: one compiled pass over the elements per call.

The pure-torch spline (:func:`astroflow_gal.flow.spline.spline_from_theta`) is about a hundred
small tensor operations (and as many autograd nodes); on the flow's 4096 x 5 blocks each is too
small to run at memory speed, so they, not the matrix products, dominate sampling, ``log_prob``
and training. This module computes the same spline, its log-derivative, its inverse and the
gradients of both in one loop over the elements, written in C (:mod:`._kernel_source`).

The C source is compiled on first use with the system's C compiler (``cc``, or ``$CC``) into a
shared library in a per-user cache folder and loaded with :mod:`ctypes` (which releases the
GIL during the call): no torch headers, no build tool, about a second of compilation once per
machine; later processes load the cached library. Without a working compiler the package uses
the pure-torch spline, with the same results.

Two environment variables set it up:

- ``ASTROFLOW_GAL_FUSED_SPLINE``: ``0`` turns the fused spline off (the pure-torch spline
  everywhere); ``1`` requires it (an error if it cannot be built); unset or ``auto``: used where
  available. Read at every call.
- ``ASTROFLOW_GAL_CACHE``: folder of the compiled library (default
  ``$XDG_CACHE_HOME/astroflow_gal`` or ``~/.cache/astroflow_gal``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

from ._kernel_source import source

__all__ = [
    "ENV_SWITCH",
    "available",
    "fused_spline",
    "fused_wanted",
    "library_path",
    "supports",
    "unavailable_reason",
]

#: Environment variable that switches the fused spline off (``0``) or requires it (``1``).
ENV_SWITCH = "ASTROFLOW_GAL_FUSED_SPLINE"

_FLAGS = [
    "-O3", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fno-trapping-math",
    "-fno-math-errno", "-std=gnu99",
]
_LOCK = threading.Lock()
_STATE: dict = {}


def _cache_dir() -> Path:
    if os.environ.get("ASTROFLOW_GAL_CACHE"):
        return Path(os.environ["ASTROFLOW_GAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "astroflow_gal"


def _compiler() -> str | None:
    cc = os.environ.get("CC") or "cc"
    return shutil.which(cc) or shutil.which("gcc")


def library_path() -> Path:
    """Where the compiled library for this source, these flags and this machine lives.

    Returns
    -------
    pathlib.Path
        Path of the shared library (it may not exist yet).
    """
    key = "\n".join([source(), " ".join(_FLAGS), platform.machine(), sys.platform])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return _cache_dir() / f"rq_spline_{digest}.so"


def _build(path: Path) -> None:
    """Compile the source into ``path`` (atomically: a temporary file, then a rename)."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC or install gcc)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        src = Path(tmp) / "rq_spline.c"
        src.write_text(source())
        out = Path(tmp) / path.name
        proc = subprocess.run(
            [cc, *_FLAGS, str(src), "-o", str(out), "-lm"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(f"compiling the fused spline failed:\n{proc.stderr[-2000:]}")
        os.replace(out, path)


def _load() -> ctypes.CDLL | None:
    """The loaded library, building it on first use; None (and the reason kept) if impossible."""
    if "lib" in _STATE:  # after the first call: no lock
        return _STATE["lib"]
    with _LOCK:
        if "lib" in _STATE:
            return _STATE["lib"]
        lib = None
        try:
            path = library_path()
            if not path.exists():
                _build(path)
            lib = ctypes.CDLL(str(path))
            if lib.afg_abi_version() != 1:
                raise RuntimeError(f"{path} is a library of another version")
            ptr, long, int_, dbl = ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_double
            for suffix in ("f32", "f64"):
                fwd = getattr(lib, f"afg_spline_forward_{suffix}")
                fwd.argtypes = [ptr, ptr, ptr, ptr, long, int_, dbl, int_, int_]
                fwd.restype = None
                bwd = getattr(lib, f"afg_spline_backward_{suffix}")
                bwd.argtypes = [ptr, ptr, ptr, ptr, ptr, ptr, long, int_, dbl, int_, int_]
                bwd.restype = None
            _STATE["error"] = None
        except (OSError, RuntimeError, AttributeError) as err:
            lib = None
            _STATE["error"] = f"{type(err).__name__}: {err}"
        _STATE["lib"] = lib
        return lib


def available() -> bool:
    """Whether the fused spline can run here (building it on first call).

    Returns
    -------
    bool
        True if the compiled library is loaded; else :func:`unavailable_reason` says why.
    """
    return _load() is not None


def unavailable_reason() -> str | None:
    """Why the fused spline cannot run (None if it can)."""
    _load()
    return _STATE.get("error")


def fused_wanted() -> bool:
    """Whether the setting :data:`ENV_SWITCH` allows the fused spline and it is available.

    Raises
    ------
    RuntimeError
        If the setting is ``1`` (required) and the library cannot be built or loaded.
    """
    setting = os.environ.get(ENV_SWITCH, "auto").strip().lower()
    if setting in ("0", "false", "off", "no"):
        return False
    if _load() is not None:
        return True
    if setting in ("1", "true", "on", "yes"):
        raise RuntimeError(
            f"{ENV_SWITCH}={setting} requires the fused spline, which is unavailable: "
            f"{_STATE.get('error')}"
        )
    return False


def supports(inputs: torch.Tensor, theta: torch.Tensor) -> bool:
    """Whether these tensors can go to the fused spline: CPU, float32 or float64, one dtype,
    one parameter row per input element (no broadcasting)."""
    return (
        theta.dim() == inputs.dim() + 1
        and theta.shape[:-1] == inputs.shape
        and inputs.device.type == "cpu"
        and theta.device.type == "cpu"
        and inputs.dtype in (torch.float32, torch.float64)
        and theta.dtype == inputs.dtype
        and not inputs.is_complex()
    )


def _suffix(t: torch.Tensor) -> str:
    return "f32" if t.dtype == torch.float32 else "f64"


#: Elements below which a call runs on one thread: starting a thread and waiting for it costs
#: more than the work saved (measured on a loaded 2-core machine, a training batch of
#: 1024 x 5 elements ran no faster on two threads).
_MIN_ELEMENTS_FOR_THREADS = 16384


def _threads(n: int) -> int:
    # Inside a worker block torch runs on one thread; the kernel follows torch's count.
    if n < _MIN_ELEMENTS_FOR_THREADS:
        return 1
    return max(1, torch.get_num_threads())


def _forward(
    inputs: torch.Tensor, theta: torch.Tensor, bins: int, bound: float, inverse: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    lib = _STATE["lib"]
    x = inputs.detach().contiguous()
    t = theta.detach().reshape(*x.shape, 3 * bins - 1).contiguous()
    y = torch.empty_like(x)
    ld = torch.empty_like(x)
    n = x.numel()
    if n:
        getattr(lib, f"afg_spline_forward_{_suffix(x)}")(
            x.data_ptr(), t.data_ptr(), y.data_ptr(), ld.data_ptr(), n, bins, float(bound),
            int(inverse), _threads(n),
        )
    return y, ld


def _backward(
    inputs: torch.Tensor,
    theta: torch.Tensor,
    g_out: torch.Tensor | None,
    g_logdet: torch.Tensor | None,
    bins: int,
    bound: float,
    inverse: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    lib = _STATE["lib"]
    x = inputs.contiguous()
    t = theta.reshape(*x.shape, 3 * bins - 1).contiguous()
    gy = g_out.contiguous() if g_out is not None else None
    gl = g_logdet.contiguous() if g_logdet is not None else None
    gx = torch.empty_like(x)
    gt = torch.empty_like(t)
    n = x.numel()
    if n:
        getattr(lib, f"afg_spline_backward_{_suffix(x)}")(
            x.data_ptr(), t.data_ptr(), gy.data_ptr() if gy is not None else None,
            gl.data_ptr() if gl is not None else None, gx.data_ptr(), gt.data_ptr(), n, bins,
            float(bound), int(inverse), _threads(n),
        )
    return gx, gt


class _FusedSpline(torch.autograd.Function):
    """The fused spline as one autograd node (first derivatives only)."""

    @staticmethod
    def forward(ctx, inputs, theta, bins, bound, inverse):  # noqa: D102
        y, ld = _forward(inputs, theta, bins, bound, inverse)
        ctx.save_for_backward(inputs, theta)
        ctx.spec = (bins, bound, inverse, theta.shape)
        return y, ld

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_logdet):  # noqa: D102
        inputs, theta = ctx.saved_tensors
        bins, bound, inverse, theta_shape = ctx.spec
        gx, gt = _backward(inputs, theta, g_out, g_logdet, bins, bound, inverse)
        return gx, gt.reshape(theta_shape), None, None, None


def fused_spline(
    inputs: torch.Tensor, theta: torch.Tensor, bins: int, bound: float, inverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rational-quadratic spline of :func:`~astroflow_gal.flow.spline.spline_from_theta`,
    computed by the compiled kernel.

    Under autograd it is one node with a first-order backward (a second derivative raises an
    error); without gradient recording it is one call. The library must be available
    (:func:`available`) and the tensors supported (CPU, float32 or float64).

    Parameters
    ----------
    inputs : torch.Tensor
        Values to transform, shape ``(...)`` (dimensionless flow-space coordinates).
    theta : torch.Tensor
        Raw parameters, shape ``(..., 3 K - 1)`` (dimensionless), as for ``spline_from_theta``.
    bins : int
        Number of bins ``K``.
    bound : float
        Half-width ``B`` of the spline interval (flow-space units).
    inverse : bool, optional
        If True, apply the inverse map.

    Returns
    -------
    outputs : torch.Tensor
        Transformed values, shape ``(...)``.
    log_abs_det : torch.Tensor
        ``log |d outputs / d inputs|`` per element, shape ``(...)``.
    """
    if _load() is None:
        raise RuntimeError(f"the fused spline is unavailable: {_STATE.get('error')}")
    if torch.is_grad_enabled() and (inputs.requires_grad or theta.requires_grad):
        return _FusedSpline.apply(inputs, theta, bins, float(bound), bool(inverse))
    return _forward(inputs, theta, bins, bound, inverse)
