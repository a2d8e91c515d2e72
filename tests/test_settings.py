"""``nexus.config.Settings``: the environment's NEXUS_HOME and NEXUS_DURABILITY, checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus.config import Settings
from nexus.domain.errors import UserError


def test_defaults_and_the_environment(tmp_path: Path) -> None:
    assert Settings(environ={}).home == Path(".nexus")
    assert Settings(environ={}).durability == "normal"
    env = {"NEXUS_HOME": str(tmp_path), "NEXUS_DURABILITY": " Full "}
    settings = Settings(environ=env)
    assert settings.db_path == tmp_path / "nexus.db"
    assert settings.durability == "full"
    assert Settings(environ={"NEXUS_HOME": "", "NEXUS_DURABILITY": ""}) == Settings(environ={})
    assert Settings(environ={"NEXUS_HOME": "~/state"}).home == Path.home() / "state"


def test_arguments_win_over_the_environment(tmp_path: Path) -> None:
    env = {"NEXUS_HOME": "/elsewhere", "NEXUS_DURABILITY": "full"}
    settings = Settings(home=tmp_path, environ=env)
    assert settings.home == tmp_path
    assert settings.durability == "full"  # not given: still the environment's
    assert Settings(durability="normal", environ=env).durability == "normal"
    assert repr(settings) == f"Settings(home={str(tmp_path)!r}, durability='full')"


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        ({}, {"NEXUS_DURABILITY": "bogus"}, "NEXUS_DURABILITY='bogus' is not a durability"),
        ({"durability": "fast"}, {}, "durability='fast' is not a durability"),
        ({}, {"NEXUS_SANDBOX_UID": "root"}, "NEXUS_SANDBOX_UID='root' is not a uid"),
        ({}, {"NEXUS_SANDBOX_UID": "4294967295"}, "between 1 and 4294967294"),
        ({}, {"NEXUS_HOME": "a\0b"}, "NEXUS_HOME holds a NUL character"),
        ({"home": "{file}"}, {}, "home={file} is not a directory"),
    ],
)
def test_bad_values_name_their_variable(
    tmp_path: Path, kwargs: dict[str, str], env: dict[str, str], message: str
) -> None:
    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")
    kwargs = {k: v.format(file=file) for k, v in kwargs.items()}
    with pytest.raises(UserError) as raised:
        Settings(environ=env, **kwargs)
    assert message.format(file=file) in raised.value.message


def test_a_good_sandbox_uid_passes() -> None:
    assert Settings(environ={"NEXUS_SANDBOX_UID": " 4242 "}).home == Path(".nexus")
