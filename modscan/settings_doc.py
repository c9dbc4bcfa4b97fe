"""The settings table in ``docs/operating.md``, generated from :class:`modscan.settings.Settings`.

The table lives between two marker comments, so it can be regenerated in place and checked
in a test instead of drifting from the code::

    python -m modscan.settings_doc            # rewrite the table in docs/operating.md
    python -m modscan.settings_doc --check    # exit 1 if the table is out of date

Defaults render the same on every machine: a path under the home folder is written as
``~/...``, ``None`` as "unset", lists as the JSON the environment variable takes.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from modscan.settings import Settings

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "operating.md"

_HEADER = ("Variable", "Default", "Description")


def env_var(name: str) -> str:
    """The environment variable that sets field ``name``."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def render_default(value: Any) -> str:
    """A field's default as Markdown, the same on every machine."""
    if value is None:
        return "unset"
    if isinstance(value, Path):
        return _code(_stable_path(value))
    if isinstance(value, bool):
        return _code(json.dumps(value))
    if isinstance(value, list | tuple | dict):
        return _code(json.dumps(value, separators=(",", ":"), default=str))
    return _code(str(value))


def _stable_path(path: Path) -> str:
    home = Path.home()
    if path == home:
        return "~"
    if path.is_relative_to(home):
        return "~/" + path.relative_to(home).as_posix()
    return path.as_posix()


def _code(text: str) -> str:
    return f"`{text}`" if text else "`''`"


def _default_cell(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True, validated_data={})
    return "required" if value is PydanticUndefined else render_default(value)


def _description(field: FieldInfo) -> str:
    text = (field.description or "").strip()
    choices = _choices(field.annotation)
    if choices:
        listed = ", ".join(f"`{choice}`" for choice in choices)
        text = f"{text}; one of {listed}" if text else f"One of {listed}"
    return text


def _choices(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(choice) for choice in typing.get_args(annotation)]
    return []


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_settings_table() -> str:
    """The Markdown table of every ``Settings`` field: variable, default, description."""
    lines = [
        "| " + " | ".join(_HEADER) + " |",
        "| " + " | ".join("---" for _ in _HEADER) + " |",
    ]
    for name, field in Settings.model_fields.items():
        cells = (f"`{env_var(name)}`", _default_cell(field), _description(field))
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _region(text: str) -> tuple[int, int]:
    """Where the table's text starts and ends: after the start marker's line, before END."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"expected exactly one {START} and one {END}")
    start = text.index(START) + len(START)
    end = text.index(END)
    if end < start:
        raise ValueError(f"{END} comes before {START}")
    if text.startswith("\n", start):
        start += 1
    return start, end


def extract_settings_table(text: str) -> str:
    """The text between the markers."""
    start, end = _region(text)
    return text[start:end]


def replace_settings_table(text: str, table: str | None = None) -> str:
    """``text`` with the region between the markers replaced by ``table`` (default: fresh)."""
    start, end = _region(text)
    return text[:start] + (render_settings_table() if table is None else table) + text[end:]


def _variables(table: str) -> list[str]:
    names = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith("`") and cells[0].endswith("`"):
            names.append(cells[0].strip("`"))
    return names


def settings_table_problems(text: str) -> list[str]:
    """What is wrong with the settings table in ``text``; empty when it is up to date."""
    try:
        found = extract_settings_table(text)
    except ValueError as exc:
        return [str(exc)]
    expected = render_settings_table()
    if found == expected:
        return []
    have, want = _variables(found), _variables(expected)
    problems = [f"missing from the table: {name}" for name in want if name not in have]
    problems += [f"not a setting: {name}" for name in have if name not in want]
    if not problems:
        stale = [
            line
            for line in found.splitlines()
            if line not in expected.splitlines() and line.strip()
        ]
        problems = [f"out of date: {line}" for line in stale] or ["out of date (layout)"]
    problems.append("run `python -m modscan.settings_doc` to regenerate it")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modscan.settings_doc",
        description=f"Regenerate the settings table between {START} and {END}.",
    )
    parser.add_argument("path", nargs="?", type=Path, default=DOC, help=f"default: {DOC}")
    parser.add_argument(
        "--check", action="store_true", help="Change nothing; exit 1 if the table is stale."
    )
    args = parser.parse_args(argv)
    path: Path = args.path
    text = path.read_text(encoding="utf-8")
    if args.check:
        problems = settings_table_problems(text)
        for problem in problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1 if problems else 0
    try:
        updated = replace_settings_table(text)
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    if updated != text:
        path.write_text(updated, encoding="utf-8")
        print(f"{path}: settings table rewritten")
    else:
        print(f"{path}: settings table already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
