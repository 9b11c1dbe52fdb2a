"""The package's layers (docs/architecture.md) hold: the import contracts in ``.importlinter`` pass
on the code as it is, and fail as soon as a module imports the wrong way or closes a cycle."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("syncnet_fcn", "detectors")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the packages under ``root`` with the repository's contracts."""
    script = Path(sys.executable).with_name("lint-imports")
    command = [str(script)] if script.exists() else [shutil.which("lint-imports") or "lint-imports"]
    if not Path(command[0]).exists():
        pytest.skip("import-linter is not installed (pip install -r requirements-dev.txt)")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(command + ["--no-cache", "--no-logo", str(REPO / ".importlinter")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_code_keeps_its_layer_contracts():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, wrong_import",
    [
        # the two cycles the split removed: scoring <-> engines/base and calibrate <-> engines
        ("syncnet_fcn/scoring.py", "from .engines.base import SyncEngine"),
        ("syncnet_fcn/engines/fcn.py", "from ..calibrate import fit_calibration"),
        # a lower layer reaching up: media into the report, a feature module into the engine
        ("syncnet_fcn/media.py", "from . import report"),
        ("syncnet_fcn/landmark/features.py", "from .reading import score_track"),
    ],
)
def test_a_wrong_way_import_breaks_the_contracts(tmp_path, module, wrong_import):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("*.pt", "*.json", "__pycache__"))
    planted = tmp_path / module
    planted.write_text(planted.read_text() + f"\n{wrong_import}  # planted by the test\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "0 broken" not in result.stdout, result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout


def test_every_module_has_a_layer():
    """A module missing from the layers contract escapes it: every module of the package is named (itself,
    or its subpackage) in ``.importlinter``."""
    contracts = (REPO / ".importlinter").read_text()
    named = set(re.findall(r"syncnet_fcn(?:\.[a-z_]+)+", contracts))
    missing = []
    for path in sorted((REPO / "syncnet_fcn").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            continue  # a package's own file: the package constants serve every layer, its modules are named
        dotted = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
        if not any(name in named for name in dotted):
            missing.append(".".join(parts))
    assert not missing, f"not in any layer of .importlinter: {missing}"
