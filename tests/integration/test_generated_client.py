"""A client nobody here wrote walks the booking: openapi-python-client generates it from the
running API's /openapi.json, and the README's walk-through runs with it, errors included.

The commands and the code are read from the README, so the README shows what is proven. The
generator's dependency bounds (httpx, typer) are not the project's, so it runs in a venv of
its own, made once per generator version under the project's venv (`make clean` drops it).
"""

import asyncio
import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Booking, auth, new_user, token

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### The same walk with a generated client"
WALK_MARKER = "<!-- generated-client-walk"
GENERATOR_OUTPUT = ".data/client/"  # where the README's command writes the package
RUN_SECONDS = 300  # only a bound against a hang: the first run installs the generator


def _fenced(text: str, language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", text, re.DOTALL)
    assert found is not None, f"no {language} block in the README's {SECTION!r}"
    return found.group(1)


def readme_walk() -> tuple[str, list[str], str]:
    """The README's generator requirement, its `generate` arguments and the Python walk."""
    section = README.read_text().partition(SECTION)[2]
    commands = _fenced(section, "sh").replace("\\\n", " ")
    requirement = re.search(r"pip install (openapi-python-client==\S+)", commands)
    generate = re.search(r"openapi-python-client (generate .*)", commands)
    assert requirement is not None and generate is not None, commands
    walk = _fenced(section.partition(WALK_MARKER)[2], "python")
    return requirement.group(1), shlex.split(generate.group(1)), walk


def generator_venv(requirement: str) -> Path:
    """A venv with only the generator, made once and kept beside the project's own."""
    home = Path(sys.prefix) / "tools" / requirement.replace("==", "-")
    home.parent.mkdir(exist_ok=True)
    with open(home.parent / "tools.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest run may be making it
        if not (home / "ready").exists():
            shutil.rmtree(home, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
            subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", requirement], check=True)
            (home / "ready").touch()
    return home


async def _run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), RUN_SECONDS)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text


async def test_a_generated_client_walks_the_readme_booking(
    api_url: str, booking: Booking, tmp_path: Path,
) -> None:
    requirement, arguments, walk = readme_walk()
    tools = await asyncio.to_thread(generator_venv, requirement)
    arguments = [argument.replace("$API", api_url).replace(GENERATOR_OUTPUT, f"{tmp_path}/")
                 for argument in arguments]
    # Its post-generation hook runs the generator's own ruff, found on PATH.
    generating = {**os.environ, "PATH": f"{tools / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    report = await _run([str(tools / "bin" / "openapi-python-client"), *arguments], generating, tmp_path)
    assert "Warning" not in report, report  # every part of the document could be expressed

    alice = new_user("alice")
    walking = {**os.environ, "API": api_url, "PYTHONPATH": str(tmp_path),
               "ADMIN": token("admin", role="admin"), "ALICE": token(alice, name="Alice")}
    (tmp_path / "walk.py").write_text(walk)
    lines = (await _run([sys.executable, "walk.py"], walking, tmp_path)).splitlines()

    assert lines[0] == "409 https://booking.example/problems/seat-unavailable SEAT_UNAVAILABLE"
    assert lines[1::2] == ["PAID 110000", "7 SOLD"], lines
    tickets = (await booking.http.get("/tickets", headers=auth(alice))).json()["items"]
    assert [ticket["seat_no"] for ticket in tickets] == [7]
    # PENDING until a saga issues it (none runs beside the session's API, but one may have)
    assert lines[2] in ("[(7, 'PENDING')]", "[(7, 'ISSUED')]"), lines
