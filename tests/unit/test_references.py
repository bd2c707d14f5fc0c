"""Every reference in gearlib's comments leads somewhere inside the repository: `book/notes/<page>.md#<label>`
names an existing method-notes page with that MyST label, and no comment cites a document users lack."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"book/notes/([a-z_]+\.md)#([a-z0-9-]+)")


def test_method_note_references_resolve():
    cited = 0
    for path in sorted((ROOT / "gearlib").rglob("*.py")):
        for page, label in REFERENCE.findall(path.read_text()):
            note = ROOT / "book" / "notes" / page
            assert note.is_file(), f"{path.name} cites missing page {page}"
            assert f"({label})=" in note.read_text(), f"{path.name} cites {page}#{label}, which has no label"
            cited += 1
    assert cited >= 20  # the growth, training and model code all cite the notes


def test_no_comment_cites_the_private_spec():
    hits = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted((ROOT / "gearlib").rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\b[Ss]pec [0-9]", line)
    ]
    assert not hits, hits


def test_every_note_page_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for page in (ROOT / "book" / "notes").glob("*.md"):
        assert f"book/notes/{page.stem}" in toc, page.name
