"""The version is written once, and the wheel ships what type checkers need."""

from __future__ import annotations

import re
import tomllib
import zipfile
from pathlib import Path

from click.testing import CliRunner
from hatchling.builders.wheel import WheelBuilder

import batch_payouts
from batch_payouts.cli import main
from tests.conftest import ROOT


def test_the_version_comes_from_the_package_alone() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"], "pyproject.toml must not repeat the version"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "batch_payouts/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", batch_payouts.__version__)


def test_no_other_package_file_writes_the_version() -> None:
    literal = re.compile(re.escape(f'"{batch_payouts.__version__}"') + "|batch-payouts/" + r"\d")
    package = ROOT / "batch_payouts"
    others = [
        p.relative_to(ROOT).as_posix() for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent != package
    ]
    assert [name for name in others if literal.search((ROOT / name).read_text())] == []


def test_dash_dash_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"], prog_name="batch-payouts")
    assert (result.exit_code, result.output) == (0, f"batch-payouts, version {batch_payouts.__version__}\n")


def test_the_wheel_ships_py_typed_and_the_version(tmp_path: Path) -> None:
    wheel = next(iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"batch_payouts-{batch_payouts.__version__}.dist-info/METADATA").decode()
    assert "batch_payouts/py.typed" in names
    assert f"\nVersion: {batch_payouts.__version__}\n" in metadata
    assert not any(n.startswith(("tests/", ".venv/")) for n in names)
