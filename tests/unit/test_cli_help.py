"""`prunetune --help` explains every option of every command, its default included, in plain text."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from prunetune import cli


def parsers(parser: argparse.ArgumentParser, name: str = "prunetune") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``parser`` and every sub-command's parser below it, each with its command line."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, child in action.choices.items():
                yield from parsers(child, f"{name} {command}")


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """The arguments and sub-commands of ``parser`` that have no help text (-h/--help aside)."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            missing += [choice.dest for choice in action._choices_actions if not (choice.help or "").strip()]
        elif not (action.help or "").strip():
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


def test_every_argument_of_every_command_has_help() -> None:
    found = dict(parsers(cli.build_parser()))
    gaps = {name: undocumented(parser) for name, parser in found.items()}
    assert {name: gap for name, gap in gaps.items() if gap} == {}
    assert {"prunetune prune", "prunetune data fetch", "prunetune data list"} <= set(found)  # the walk goes deep


def test_every_command_shows_its_defaults_and_its_summary() -> None:
    for name, parser in parsers(cli.build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default: {action.default})".replace(" ", "") in text.replace(" ", "").replace("\n", ""), (
                    name,
                    action.dest,
                )
        if name != "prunetune":
            assert parser.description, name


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":mod:" not in text
    assert "exit code 2" in text  # the whole description, not its first line only
