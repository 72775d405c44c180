"""Layers import only downward (import-linter contract in pyproject.toml), and the installed layout exposes a
single top-level import name.

import-linter walks a package's own folder, so the contract runs on a copy laid out as the wheel installs it
(trainer/, kernels/ and hwconfigs/ under accelsim/)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _stage(tmp: Path) -> Path:
    """Copy the sources into the installed layout under tmp; returns the copy's `accelsim` folder."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for name, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        dest = tmp.joinpath(*name.split("."))
        shutil.copytree(ROOT / folder, dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.yaml"))
    return tmp / "accelsim"


def _lint(stage_root: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("importlinter", reason="import-linter is a dev dependency (pip install -e '.[dev]')")
    shutil.copy(ROOT / "pyproject.toml", stage_root / "pyproject.toml")
    env = dict(os.environ, PYTHONPATH=str(stage_root))
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-P", "-c", code, "--no-cache"],
                          cwd=stage_root, env=env, capture_output=True, text=True, timeout=300)


def test_layer_contract_holds(tmp_path):
    _stage(tmp_path)
    proc = _lint(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "KEPT" in proc.stdout


def test_upward_import_breaks_the_contract(tmp_path):
    """An import from a lower layer to a higher one (here the trace format importing the trainer) fails."""
    pkg = _stage(tmp_path)
    trace = pkg / "trace.py"
    trace.write_text(trace.read_text() + "\n\ndef _upward():\n    from accelsim.trainer import train  # noqa\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "accelsim.trace" in proc.stdout


def test_package_list_matches_the_folders():
    """Every folder with an __init__.py ships (the package list is explicit under package-dir mapping)."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == set(PYPROJECT["tool"]["setuptools"]["packages"])
