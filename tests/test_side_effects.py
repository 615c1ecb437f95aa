"""The package leaves the caller's global state as it found it (matplotlib backend, imports)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import matplotlib
matplotlib.use("svg")                      # the user's choice, before pyplot is imported
import astroflow_gal.analysis.plots as plots
import sys
assert "matplotlib.pyplot" not in sys.modules, "importing the plots module imported pyplot"
import astropy.units as u
import numpy as np
from astropy.table import QTable
rng = np.random.default_rng(0)
stars = QTable({"x": rng.normal(size=200) * u.kpc, "y": rng.normal(size=200) * u.kpc})
fig = plots.corner_plot(stars, columns=["x", "y"], bins=10)
print(matplotlib.get_backend())
"""


def test_plots_keep_the_users_matplotlib_backend(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY",
                                                             "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().lower() == "svg"
