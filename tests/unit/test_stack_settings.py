"""Which settings a command reads: its environment first, then a *running* stack's file."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import InvalidSettings, load_settings
from workers.devstack.stackfiles import stack_lock, write_stack_env
from workers.dlq.config import Settings

pytestmark = pytest.mark.unit

STACK = {"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5/stack",
         "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:6", "KAFKA_ENABLE_IDEMPOTENCE": "false"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with a stack.env, as the working directory, nothing set."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".data").mkdir()
    write_stack_env(tmp_path / ".data", STACK)
    for name in STACK:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path / "sub")
    return tmp_path


def test_a_running_stack_fills_what_the_environment_leaves_out(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:7")
    with stack_lock(project / ".data" / "stack.lock"):
        settings = load_settings(Settings)
        load_settings(Settings)
    assert settings.database_dsn == STACK["DATABASE_URL"]
    assert settings.kafka_bootstrap_servers == "127.0.0.1:7"
    assert settings.kafka_enable_idempotence is False
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and said[0].startswith(f"settings: from {project / '.data' / 'stack.env'}")


def test_a_file_left_by_a_stopped_stack_is_not_read(project: Path) -> None:
    with pytest.raises(InvalidSettings, match="left from a `make run` that has stopped"):
        load_settings(Settings)
