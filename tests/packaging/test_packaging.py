"""The package definitions agree with the project: versions, pins and the files they install."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "packaging/requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_every_runtime_dependency_within_its_range() -> None:
    pins = locked()
    for spec in project()["dependencies"]:
        req = Requirement(spec)
        assert canonical(req.name) in pins, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(pins[canonical(req.name)]), spec


def test_lock_holds_no_test_tools() -> None:
    pins = locked()
    for spec in project()["optional-dependencies"]["test"]:
        assert canonical(Requirement(spec).name) not in pins


def test_debian_changelog_and_rpm_spec_carry_the_project_version() -> None:
    version = project()["version"]
    changelog = (ROOT / "debian/changelog").read_text().splitlines()[0]
    assert changelog.startswith(f"llmd ({version})")
    spec = (ROOT / "rpm/llmd.spec").read_text()
    assert re.search(rf"^Version:\s+{re.escape(version)}$", spec, re.MULTILINE)


def test_debian_units_and_sysusers_are_the_shipped_files() -> None:
    for name in ("llmd.socket", "llmd.service", "llmd.sysusers"):
        link = ROOT / "debian" / name
        assert link.is_symlink() and link.resolve() == ROOT / "units" / name


def test_every_installed_source_file_exists() -> None:
    for line in (ROOT / "debian/llmd.install").read_text().splitlines():
        assert (ROOT / line.split()[0]).is_file(), line
    spec = (ROOT / "rpm/llmd.spec").read_text()
    for source in re.findall(r"^install -Dpm0644 ((?:units|conf)/\S+)", spec, re.MULTILINE):
        assert (ROOT / source).is_file(), source


def test_maintainer_scripts_are_valid_shell_with_the_debhelper_token() -> None:
    for name in ("postinst", "prerm", "postrm"):
        script = ROOT / "debian" / f"llmd.{name}"
        assert "#DEBHELPER#" in script.read_text()
        subprocess.run(["sh", "-n", str(script)], check=True)
    for name in ("wheelhouse.sh", "install-venv.sh", "llama-wheel.sh"):
        subprocess.run(["sh", "-n", str(ROOT / "packaging" / name)], check=True)
