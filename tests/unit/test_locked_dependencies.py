"""The lock files stay true to pyproject.toml, and everything installs from them.

requirements.lock holds what the image installs, requirements-dev.lock adds the local and
dev extras for `make install` (so CI too); `make lock` writes both with uv.
"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCKS = {"requirements.lock": (), "requirements-dev.lock": ("local", "dev")}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(?: ;[^\\]*)?(?: \\)?$")


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    optional = PROJECT["optional-dependencies"]
    return [Requirement(line) for line in PROJECT["dependencies"] + [
        line for extra in extras for line in optional[extra]]]


def pinned(lock: str) -> dict[str, Version]:
    """Each pinned package of `lock` and its version; every pin carries its hashes."""
    text = (ROOT / lock).read_text()
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
        match = PIN.match(block.splitlines()[0])
        assert match, block
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"{match[1]} has no hash in {lock}"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


@pytest.mark.parametrize("lock", LOCKS)
def test_every_declared_dependency_is_pinned_within_its_range(lock: str) -> None:
    pins = pinned(lock)
    for requirement in declared(LOCKS[lock]):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {lock}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]}, outside {requirement.specifier}: run `make lock`")


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_was_made_from_pyproject_with_its_extras(lock: str) -> None:
    command = (ROOT / lock).read_text().splitlines()[1]
    assert command.startswith("#    uv pip compile pyproject.toml"), command
    assert re.findall(r"--extra (\w+)", command) == list(LOCKS[lock]), command
    assert "--generate-hashes" in command and f"-o {lock}" in command, command


def test_the_image_locks_what_the_dev_lock_locks() -> None:
    image, dev = pinned("requirements.lock"), pinned("requirements-dev.lock")
    assert {name: dev.get(name) for name in image} == image


def test_every_dependency_has_an_upper_bound() -> None:
    for requirement in declared(("local", "dev")):
        assert any(spec.operator in {"<", "<=", "==", "~="} for spec in requirement.specifier), requirement


def test_make_install_and_the_image_install_from_the_locks_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements-dev.lock" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
    assert re.search(r"^\$\(STAMP\):.*\brequirements-dev\.lock\b", makefile, re.M)
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert "--require-hashes --wheel-dir /wheels -r requirements.lock" in dockerfile
    assert "--no-deps" in dockerfile and "!requirements.lock" in (ROOT / ".dockerignore").read_text()
