"""What :func:`nexus.cli._help.render_help` draws for parameters nexus's own commands
do not all have: hidden and deprecated ones, environment variables, ``--x/--no-x``
flags, markup and ``\\b`` paragraphs in help, a group's hidden commands."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
import typer
import typer.main

from nexus.cli._help import render_help


def _shown(
    cmd: typer.core.TyperCommand | typer.core.TyperGroup, capsys: pytest.CaptureFixture[str]
) -> str:
    ctx = typer.Context(cmd, info_name="demo")
    render_help(cmd, ctx)
    return capsys.readouterr().out


def _command() -> typer.core.TyperCommand:
    app = typer.Typer(add_completion=False)

    @app.command()
    def go(
        name: Annotated[str, typer.Argument(help="Who to greet.")],
        shout: Annotated[bool, typer.Option("--shout/--whisper", help="How loud.")] = False,
        token: Annotated[
            str, typer.Option(envvar="DEMO_TOKEN", show_envvar=True, help="The [bold]key[/].")
        ] = "",
        secret: Annotated[str, typer.Option(hidden=True, help="Never shown.")] = "",
        times: Annotated[int, typer.Option(min=1, max=9, help="How often.")] = 2,
    ) -> None:
        """Greet someone.

        \b
        one line
        another line
        """

    cmd = typer.main.get_command(app)
    assert isinstance(cmd, typer.core.TyperCommand)
    return cmd


def test_options_flags_envvars_ranges_and_hidden(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    text = _shown(_command(), capsys)
    assert "Usage: demo [OPTIONS] " in text
    assert re.search(r"^│ \* +NAME +.*Who to greet\. \[required\]", text, re.M), text
    # a flag shows no metavar (nexus's own commands set words: registry.readable)
    assert re.search(r"--shout +--whisper +How loud\. \[default: whisper\]", text), text
    assert re.search(r"--help +Show this message and exit\.", text), text
    # markup in help is drawn, not printed; Click's own bracket is printed as it is
    assert "The key. [env var: DEMO_TOKEN]" in text, text
    assert "[bold]" not in text
    assert "[default: 2; 1<=x<=9]" in text
    assert "--secret" not in text
    assert "Never shown" not in text
    # the first paragraph is the summary; a \b paragraph keeps its lines
    assert re.search(r"^ +Greet someone\.", text, re.M)
    assert re.search(r"^ +Greet someone\. *\n *\n +one line *\n +another line", text, re.M), text


def test_a_groups_hidden_and_deprecated_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    app = typer.Typer(add_completion=False)

    @app.command()
    def shown() -> None:
        """Is listed.

        Not this paragraph."""

    @app.command(hidden=True)
    def secret() -> None:
        """Is not listed."""

    @app.command(deprecated=True)
    def old() -> None:
        """Was the way."""

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    text = _shown(group, capsys)
    assert re.search(r"^│ shown +Is listed\. +│$", text, re.M), text
    assert re.search(r"^│ old +\(deprecated\) Was the way\.", text, re.M), text
    assert "secret" not in text
    assert "Not this paragraph" not in text
