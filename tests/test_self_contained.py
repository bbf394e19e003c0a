"""The repository stands on its own: no tracked file points outside it, every docs/ page it cites
exists, and the contract tests read the provider's OpenAPI file from inside it.
``.ci/self-contained`` runs this file again in a fresh clone placed in an empty folder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests import contract
from tests.conftest import ROOT

# What pointing outside looks like: the design notes and provider notes that sat beside the
# repository while it was written. Written as patterns so that this file does not match itself.
OUTSIDE = re.compile(r"\.\./shared|shared/kotani[-]api|REFERENCE\.md|\bDESIG[N]\b")
CITED_DOC = re.compile(r"\bdocs/[\w.-]+\.md\b")
RELATIVE_LINK = re.compile(r"\]\(([\w.-]+\.md)(?:#[\w-]*)?\)")
# The changelog may tell the story of how the references were removed.
EXEMPT = {"CHANGELOG.md"}


def tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    assert listing.returncode == 0, f"git ls-files failed in {ROOT}: {listing.stderr.decode(errors='replace')}"
    return [name for name in listing.stdout.decode().split("\0") if name]


def outside_references(text: str) -> list[str]:
    """The lines of ``text`` that refer to something outside the repository, numbered from 1."""
    return [
        f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), start=1) if OUTSIDE.search(line)
    ]


def tracked_texts() -> dict[str, str]:
    """Every tracked text file (binary files such as the sample workbook left out), by name."""
    texts = {}
    for name in tracked_files():
        path = ROOT / name
        if name in EXEMPT or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data:
            texts[name] = data.decode("utf-8", "replace")
    return texts


def test_no_tracked_file_refers_outside_the_repository() -> None:
    found = [f"{name}:{line}" for name, text in tracked_texts().items() for line in outside_references(text)]
    assert not found, "these lines point outside the repository; cite docs/ instead:\n" + "\n".join(found)


def test_every_docs_page_cited_exists() -> None:
    tracked = set(tracked_files())
    missing = set()
    for name, text in tracked_texts().items():
        missing |= {f"{name} cites {cited}" for cited in CITED_DOC.findall(text) if cited not in tracked}
        if name.startswith("docs/") and name.endswith(".md"):
            missing |= {f"{name} links {link}" for link in RELATIVE_LINK.findall(text) if f"docs/{link}" not in tracked}
    assert not missing, "\n".join(sorted(missing))


def test_every_kind_of_outside_reference_is_caught() -> None:
    up, notes, design = "..", "shared", "DESIG" + "N"
    offending = [
        f"see {up}/{notes}/{design}.md",
        f"{notes}/kotani-api/openapi.json",
        "REFERENCE" + ".md §7",
        f"{design}.md §3",
        f"{up}/{notes}/",
        f"{design}'s exit codes",
    ]
    for text in offending:
        assert outside_references(f"first line\n{text}\n") == [f"2: {text}"], text
    harmless = [
        "docs/provider.md",
        "xl/sharedStrings.xml",
        "REFERENCES batches(id)",
        "docs/exactly-once.md",
        "the design of the ledger",
        "DESIGNED",
    ]
    assert outside_references("\n".join(harmless)) == []


def test_the_contract_tests_read_the_vendored_openapi_file() -> None:
    spec = Path(contract.SPEC_PATH).resolve()
    assert spec.is_relative_to(ROOT), f"{spec} is outside the repository {ROOT}"
    assert spec.relative_to(ROOT).as_posix() in tracked_files()
    provenance = (spec.parent / "README.md").read_text()
    assert spec.name in provenance and "2026-11-29" in provenance
