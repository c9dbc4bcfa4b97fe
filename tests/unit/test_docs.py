"""The docs stay true: their relative links resolve, and the settings table matches the code.

The checkers are plain functions over real files, so each test of the real docs has a twin
that feeds the same checker a deliberately broken file and expects it to say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from modscan.settings import Settings
from modscan.settings_doc import (
    END,
    START,
    env_var,
    extract_settings_table,
    main,
    render_default,
    render_settings_table,
    settings_table_problems,
)

ROOT = Path(__file__).resolve().parents[2]
OPERATING = ROOT / "docs" / "operating.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# -- the checkers -----------------------------------------------------------------------------


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans removed."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker[0] * len(marker)
                continue
            if marker.startswith(fence):
                fence = None
                continue
        if fence is None:
            yield number, _INLINE_CODE.sub("", line)


def links(text: str) -> list[tuple[int, str]]:
    """Every link and image target in the prose: inline ones and reference definitions.

    A reference definition (``[name]: target``) cannot interrupt a paragraph, so a line such
    as ``[0.1, 0.9]: outside it …`` in the middle of one is text, not a definition.
    """
    found = []
    previous_ends_paragraph = True
    for number, line in prose_lines(text):
        reference = _REFERENCE.match(line) if previous_ends_paragraph else None
        if reference:
            found.append((number, reference.group(1)))
        else:
            found += [(number, target) for target in _LINK.findall(line)]
        previous_ends_paragraph = not line.strip() or bool(reference) or bool(_HEADING.match(line))
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lowercased, punctuation other than - and _
    dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def heading_slugs(text: str) -> set[str]:
    """The anchors of every heading, with GitHub's -1, -2 … for repeated ones."""
    seen: dict[str, int] = {}
    slugs = set()
    fence: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker[0] * len(marker)
            elif marker.startswith(fence):
                fence = None
            continue
        heading = _HEADING.match(line) if fence is None else None
        if not heading:
            continue
        slug = github_slug(heading.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def link_problems(page: Path, root: Path) -> list[str]:
    """Each relative link in ``page`` that names no file under ``root``, or no heading."""
    problems = []
    text = page.read_text(encoding="utf-8")
    for number, target in links(text):
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue  # external (https:, mailto:), or empty
        where = f"{page.relative_to(root)}:{number}: {target}"
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part)
        if not path_part:
            resolved = page
        elif path_part.startswith("/"):
            resolved = (root / path_part.lstrip("/")).resolve()
        else:
            resolved = (page.parent / path_part).resolve()
        if not resolved.is_relative_to(root.resolve()):
            problems.append(f"{where}: points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        checkable = anchor and resolved.is_file() and resolved.suffix == ".md"
        if checkable and anchor not in heading_slugs(resolved.read_text(encoding="utf-8")):
            problems.append(f"{where}: no heading #{anchor} in {resolved.relative_to(root)}")
    return problems


# -- the real docs ----------------------------------------------------------------------------


def test_there_are_docs_to_check() -> None:
    assert (ROOT / "README.md").is_file()
    assert OPERATING in DOCS
    assert (ROOT / "docs" / "review-page.png").is_file()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    assert link_problems(page, ROOT) == []


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_each_docs_page_opens_with_who_it_is_for(page: Path) -> None:
    blocks = page.read_text(encoding="utf-8").split("\n\n")
    assert blocks[0].startswith("# "), "a page starts with its title"
    assert "is for" in blocks[1], f"the first paragraph says who {page.name} is for"


def test_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250, "move detail into docs/ and link to it"


def test_settings_table_is_what_the_settings_object_renders() -> None:
    text = OPERATING.read_text(encoding="utf-8")
    assert settings_table_problems(text) == []
    assert extract_settings_table(text) == render_settings_table()


def test_settings_table_lists_exactly_the_fields_of_settings() -> None:
    table = extract_settings_table(OPERATING.read_text(encoding="utf-8"))
    listed = re.findall(r"^\| `(MODSCAN_[A-Z0-9_]+)` \|", table, flags=re.M)
    assert listed == [env_var(name) for name in Settings.model_fields]


def test_machine_dependent_defaults_render_stably() -> None:
    table = render_settings_table()
    assert "| `MODSCAN_HOME` | `~/.cache/modscan` |" in table
    assert f"{Path.home().as_posix()}/" not in table
    assert render_default(Path.home() / "x" / "y") == "`~/x/y`"
    assert render_default(Path("/srv/models")) == "`/srv/models`"
    assert render_default(None) == "unset"
    assert render_default([16, 64]) == "`[16,64]`"
    assert render_default(True) == "`true`"


# -- the checkers catch what they are for ------------------------------------------------------


def test_link_checker_reports_broken_links_and_only_those(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# Top\n\n## Quick start, in 2 steps!\n")
    (tmp_path / "docs" / "picture.png").write_bytes(b"\x89PNG")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "## `modscan train` options\n\n"
        "## Notes\n\n"
        "## Notes\n\n"
        "Good: [top](../README.md), [step](../README.md#quick-start-in-2-steps),\n"
        "[here](#modscan-train-options), [twice](#notes-1), ![pic](picture.png),\n"
        "[root](/README.md#top), [web](https://example.com/nowhere.md), [mail](mailto:a@b.c).\n"
        "`[code](missing-in-code.md)` is not a link.\n\n"
        "```md\n[fenced](missing-in-fence.md)\n```\n\n"
        "Broken: [gone](gone.md), [anchor](../README.md#quickstart),\n"
        "[self](#no-such-heading), [up](../../outside.md), ![img](missing.png).\n\n"
        "[ref]: ./also-gone.md\n"
        "[ref2]: ../README.md#top\n\n"
        "A paragraph, then\n[0.1, 0.9]: not a definition, so not a link.\n"
    )

    problems = link_problems(page, tmp_path)

    assert problems == [
        "docs/page.md:18: gone.md: no such file",
        "docs/page.md:18: ../README.md#quickstart: no heading #quickstart in README.md",
        "docs/page.md:19: #no-such-heading: no heading #no-such-heading in docs/page.md",
        "docs/page.md:19: ../../outside.md: points outside the repository",
        "docs/page.md:19: missing.png: no such file",
        "docs/page.md:21: ./also-gone.md: no such file",
    ]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Items, statuses and error reasons", "items-statuses-and-error-reasons"),
        ("`modscan train` options", "modscan-train-options"),
        ("Fault tests a one-machine suite can run", "fault-tests-a-one-machine-suite-can-run"),
        ("Ingest: queues, notifications", "ingest-queues-notifications"),
        ("snake_case & more", "snake_case--more"),
        ("See [the API](api.md)", "see-the-api"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def _with_table(table: str) -> str:
    return f"# Settings\n\nIntro.\n\n{START}\n{table}{END}\n\nAfter.\n"


def test_settings_checker_reports_a_missing_row() -> None:
    rows = render_settings_table().splitlines(keepends=True)
    dropped = next(row for row in rows if row.startswith("| `MODSCAN_MAX_FRAMES`"))
    problems = settings_table_problems(_with_table("".join(r for r in rows if r != dropped)))
    assert "missing from the table: MODSCAN_MAX_FRAMES" in problems


def test_settings_checker_reports_a_row_that_is_no_setting() -> None:
    extra = "| `MODSCAN_SCANS_EXTENSION` | unset | A method, not a field |\n"
    problems = settings_table_problems(_with_table(render_settings_table() + extra))
    assert "not a setting: MODSCAN_SCANS_EXTENSION" in problems


def test_settings_checker_reports_a_stale_default() -> None:
    stale = render_settings_table().replace(
        "| `MODSCAN_MAX_BATCH` | `256` |", "| `MODSCAN_MAX_BATCH` | `128` |"
    )
    problems = settings_table_problems(_with_table(stale))
    assert any(p.startswith("out of date: | `MODSCAN_MAX_BATCH` | `128` |") for p in problems)


def test_settings_checker_reports_missing_markers() -> None:
    assert settings_table_problems(render_settings_table()) != []
    assert settings_table_problems(_with_table(render_settings_table()) + START) != []


def test_settings_doc_rewrites_only_the_region(tmp_path: Path) -> None:
    doc = tmp_path / "operating.md"
    stale = _with_table("| Variable | Default | Description |\n| `MODSCAN_GONE` | `1` | x |\n")
    doc.write_text(stale)
    assert main([str(doc), "--check"]) == 1
    assert doc.read_text() == stale, "--check changes nothing"

    assert main([str(doc)]) == 0
    fresh = doc.read_text()
    assert settings_table_problems(fresh) == []
    assert fresh == _with_table(render_settings_table())
    assert main([str(doc), "--check"]) == 0
    assert main([str(doc)]) == 0
    assert doc.read_text() == fresh, "rewriting is idempotent"
