"""Packaging consistency: pyproject.toml pins, environment.yml mirror, installed versions."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _load_pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _load_env() -> dict:
    with (ROOT / "environment.yml").open() as f:
        return yaml.safe_load(f)


def _runtime_reqs() -> list[Requirement]:
    return [Requirement(s) for s in _load_pyproject()["project"]["dependencies"]]


def _extra_reqs() -> list[Requirement]:
    extras = _load_pyproject()["project"].get("optional-dependencies", {})
    return [Requirement(s) for group in extras.values() for s in group]


def _build_reqs() -> list[Requirement]:
    return [Requirement(s) for s in _load_pyproject()["build-system"]["requires"]]


def _pin(req: Requirement) -> str:
    """Return the exact version of a `name==version` requirement, failing otherwise."""
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{req} is not pinned with =="
    assert "*" not in specs[0].version, f"{req} uses a wildcard pin"
    return specs[0].version


def _pins(reqs: list[Requirement]) -> dict[str, str]:
    return {canonicalize_name(r.name): _pin(r) for r in reqs}


def _env_pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip: section"
    return sections[0]


@pytest.mark.parametrize("req", _runtime_reqs() + _extra_reqs() + _build_reqs(), ids=str)
def test_pyproject_dependencies_pinned_exactly(req: Requirement) -> None:
    _pin(req)


def test_environment_pip_pins_match_pyproject() -> None:
    expected = _pins(_runtime_reqs() + _extra_reqs() + _build_reqs())
    lines = _env_pip_section(_load_env())
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+", line), (
            f"environment.yml pip entry {line!r} is not name==version"
        )
    actual = _pins([Requirement(line) for line in lines])
    assert len(actual) == len(lines), "duplicate package in environment.yml pip section"
    assert actual == expected


def test_environment_python_version() -> None:
    deps = _load_env()["dependencies"]
    assert "python=3.11" in deps


def test_torch_pin() -> None:
    pins = _pins(_runtime_reqs())
    assert pins.get("torch") == "2.13.0"


@pytest.mark.parametrize(
    "req", _runtime_reqs() + _extra_reqs(), ids=lambda r: canonicalize_name(r.name)
)
def test_installed_versions_match_pins(req: Requirement) -> None:
    is_extra = req not in _runtime_reqs()
    try:
        installed = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        if is_extra:
            pytest.skip(f"optional {req.name} not installed")
        raise
    # `==X` matches local versions such as torch 2.13.0+cpu (PEP 440), as pip does.
    assert req.specifier.contains(installed, prereleases=True), (
        f"{req.name}: installed {installed}, pinned {_pin(req)}"
    )


def test_make_install_adds_extras_to_an_existing_venv(tmp_path):
    """``make install EXTRAS=...`` in an installed venv installs them (its stamp records the
    extras installed so far); extras already there install nothing, and a reinstall after
    ``pyproject.toml`` changed keeps every extra installed."""
    import os
    import subprocess

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    fake = venv / "bin" / "python"  # records its arguments instead of running pip
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    stamp = venv / ".installed"
    stamp.write_text("astra,dev,gpu\n")
    env = {k: v for k, v in os.environ.items() if k not in ("EXTRAS", "MAKEFLAGS", "MAKELEVEL")}

    def install(*extras: str, installed_after_edit: bool = True) -> list[str]:
        shift = 10 if installed_after_edit else -10  # the stamp against pyproject.toml
        when = (ROOT / "pyproject.toml").stat().st_mtime + shift
        os.utime(stamp, (when, when))
        calls.unlink(missing_ok=True)
        cmd = ["make", "--no-print-directory", "install", f"VENV={venv}", *extras]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return calls.read_text().split() if calls.exists() else []

    pip = ["-m", "pip", "install", "--quiet", "--progress-bar", "off", "-e"]
    assert install() == []
    assert install("EXTRAS=dev,astra,gpu") == []
    assert install("EXTRAS=dev,astra,gpu,loggers") == [*pip, ".[astra,dev,gpu,loggers]"]
    assert stamp.read_text().strip() == "astra,dev,gpu,loggers"
    assert install("EXTRAS=dev") == []  # installed already
    assert install(installed_after_edit=False) == [*pip, ".[astra,dev,gpu,loggers]"]
