"""The README's two commands, its ten-line example and its links; .ci/run runs its test command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

MAIN_JOB = "pip install torch==2.13.0 && pip install -e . && astroflow-gal demo"
TESTS = 'pip install torch==2.13.0 && pip install -e ".[test,docs]" && python -m pytest -q'


def _blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced code block, in order."""
    return [(m.group(1), m.group(2).strip())
            for m in re.finditer(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", README, re.M | re.S)]


def test_the_two_commands_come_first_and_alone():
    blocks = _blocks()
    assert blocks[0] == ("bash", MAIN_JOB)
    assert blocks[1] == ("bash", TESTS)
    first_section = README.index("\n## ")
    assert README.index(TESTS) < first_section  # both at the top, before any section


def test_ci_runs_the_readme_test_command():
    out = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-test-command"],
                         capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == TESTS
    ci = (ROOT / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and "ruff check ." in ci
    assert ci.index("torch==2.13.0") < ci.index('bash -euo pipefail -c "$command"')


def test_the_extras_of_the_test_command_name_what_the_tests_need():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    names = {re.split(r"[<>=\[ ;]", req)[0].lower() for req in extras["test"] + extras["docs"]}
    assert {"pytest", "ruff", "scipy", "cffconvert", "sphinx", "myst-parser", "numpydoc", "furo",
            "sphinx-gallery"} <= names
    assert "astroflow-gal[docs]" in extras["test"]


def test_the_links_point_to_files_that_exist():
    for target in re.findall(r"\]\(([^)#\s]+)\)", README):
        if target.startswith("http"):
            continue
        assert (ROOT / target).exists(), target
    figure = ROOT / "docs" / "figures" / "readme_galaxy.png"
    assert figure.is_file() and figure.stat().st_size < 300_000


def test_the_ten_line_example_runs_in_under_a_minute(tmp_path):
    code = next(text for lang, text in _blocks() if lang == "python")
    lines = [ln for ln in code.splitlines() if ln.strip()]
    assert len(lines) == 10
    script = tmp_path / "example.py"
    script.write_text(code + "\nprint('mass per star', stars.meta['mass_per_star'], f.unit, "
                      "len(coords), mine.history['edf']['train_nll'])\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - start
    assert out.returncode == 0, out.stderr[-3000:]
    assert "mass per star" in out.stdout and "20000" in out.stdout
    # the training reported itself without a terminal: a start line with its steps
    assert re.search(r"training: \d+ steps to do over 1 epochs", out.stderr)
    if os.environ.get("CI"):
        assert took < 120, f"the README example took {took:.0f} s"
    print(f"README example: {took:.1f} s")

