"""The manual cannot drift from the code: every `streamserve ...` command written in README.md
and docs/*.md, and every example in the `--help` texts, parses with the real parser; every
subcommand's help shows its defaults and an example."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
INLINE = re.compile(r"`((?:\.venv/bin/)?streamserve [^`]+)`")
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def _commands_in(text: str) -> Iterator[tuple[str, bool]]:
    """(command, written inline in prose?) for each `streamserve` command in a document."""
    for block in FENCE.findall(text):
        for line in block.splitlines():
            if re.match(r"\s*(\.venv/bin/)?streamserve ", line):
                yield line, False
    for command in INLINE.findall(FENCE.sub("", text)):
        yield command, True


def _argvs(command: str) -> Iterator[list[str]]:
    """`[ENV=x] streamserve a b && streamserve c &  # comment` -> [a, b], [c]."""
    words = shlex.split(command, comments=True)
    while words:
        if "&&" in words:
            cut = words.index("&&")
            part, words = words[:cut], words[cut + 1:]
        else:
            part, words = words, []
        part = [w for w in part if w != "&"]
        while part and ASSIGNMENT.match(part[0]):
            part = part[1:]
        if part and part[0].endswith("streamserve"):
            yield part[1:]


def documented_commands() -> list[tuple[str, list[str], bool]]:
    found = []
    for path in DOCUMENTS:
        for command, inline in _commands_in(path.read_text(encoding="utf-8")):
            found += [(f"{path.name}: {command.strip()}", argv, inline)
                      for argv in _argvs(command)]
    return found


def _parses(argv: list[str]) -> str | None:
    """None when `argv` parses; else argparse's complaint."""
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version exit 0 after printing
        return None if exc.code == 0 else f"exit {exc.code}"
    return None


def _names_a_subcommand(argv: list[str]) -> bool:
    """Prose like "`streamserve send` reads ..." or "`streamserve stack`" names a command
    without its arguments (in a code block the same line would be a command that fails)."""
    commands = {word for name, _ in subcommand_parsers() for word in name.split()[:1]}
    return len(argv) == 1 and argv[0] in commands


def test_every_documented_command_parses(capsys: pytest.CaptureFixture[str]) -> None:
    commands = documented_commands()
    # The README alone shows more than a dozen; finding few means the extraction broke.
    assert len(commands) >= 20, commands
    assert any(argv[:1] == ["bench"] and "--torch-threads" in argv for _, argv, _ in commands)
    failures = {where: (_parses(argv), capsys.readouterr().err.strip().splitlines()[-1:])
                for where, argv, inline in commands
                if _parses(argv) is not None and not (inline and _names_a_subcommand(argv))}
    assert not failures, failures
    assert not _names_a_subcommand(["sned"])


def subcommand_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    def walk(prefix: str, parser: argparse.ArgumentParser) -> Iterator[
            tuple[str, argparse.ArgumentParser]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(f"{prefix} {name}".strip(), child)
                return
        yield prefix, parser

    yield from walk("", build_parser())


def test_every_subcommand_help_has_an_example_that_parses() -> None:
    leaves = dict(subcommand_parsers())
    assert {"stack up", "topics create", "send", "tail", "worker", "bench"} <= set(leaves)
    for name, parser in leaves.items():
        help_text = parser.format_help()
        assert "\nexample:\n  " in help_text, name
        example = help_text.split("\nexample:\n", 1)[1].strip().splitlines()[0]
        argvs = list(_argvs(example))
        assert argvs and all(_parses(argv) is None for argv in argvs), (name, example)
        assert argvs[-1][: len(name.split())] == name.split(), (name, example)


def test_every_option_with_a_default_shows_it() -> None:
    for name, parser in subcommand_parsers():
        help_text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert f"(default: {action.default})" in help_text, (name, action.dest)


def test_send_and_tail_defaults_are_documented() -> None:
    send = dict(subcommand_parsers())["send"].format_help()
    assert "first served model" in " ".join(send.split())
    tail = dict(subcommand_parsers())["tail"].parse_args([])
    assert tail.from_beginning is False  # new results only, unless asked


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert re.fullmatch(r"streamserve \S+\n", capsys.readouterr().out)


def _text_files() -> Iterator[Path]:
    skipped = {".git", ".venv", ".cache", ".streamserve", "results", "build"}
    suffixes = {".py", ".md", ".toml", ".yaml", ".yml", ".sh", ".txt", ""}
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if set(parts) & skipped or any(p.endswith((".egg-info", "_cache")) for p in parts):
            continue
        if path.is_file() and path.suffix in suffixes and path != Path(__file__).resolve():
            yield path


def test_the_repository_never_cites_a_design_file_that_is_not_in_it() -> None:
    cited = "DESIGN" + ".md"  # split, so this file does not cite it either
    hits = [str(path.relative_to(ROOT)) for path in _text_files()
            if cited in path.read_text(encoding="utf-8", errors="replace")]
    assert hits == []
    assert (ROOT / "docs" / "design.md").is_file()
