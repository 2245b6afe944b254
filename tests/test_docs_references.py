"""The documents that the code and the README point to are in the repository (issue 13,
item 8): every ``docs/*.md`` named exists, every ``docs/formats.md §N`` names a section of it,
no pointer to documents outside the repository (DESIGN.md, reference/*.md, numbered "quirks")
is left, and what examples write (checkpoints) is ignored by git."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sample_oracle import REPO_ROOT

SOURCES = [*sorted((REPO_ROOT / "src").rglob("*.py")), REPO_ROOT / "README.md",
           *sorted((REPO_ROOT / "examples").glob("*.py")), *sorted((REPO_ROOT / "docs").glob("*.md"))]
OUTSIDE = re.compile(r"DESIGN\.md|reference/\w+\.md|metavision_api\.md|openeb_conformance\.md|"
                     r"\bquirks? \d+|(?<![/\w])formats\.md\s*§")


def texts():
    return [(p, p.read_text()) for p in SOURCES]


def test_no_pointer_outside_the_repository():
    found = [f"{p.relative_to(REPO_ROOT)}: {m.group(0)}" for p, text in texts()
             for m in OUTSIDE.finditer(text)]
    assert found == []


def test_named_documents_exist():
    named = {m.group(1) for _, text in texts() for m in re.finditer(r"\bdocs/([\w.-]+\.md)", text)}
    assert {"formats.md", "compatibility.md", "design.md"} <= named
    assert [n for n in sorted(named) if not (REPO_ROOT / "docs" / n).is_file()] == []
    for doc in (REPO_ROOT / "docs").glob("*.md"):        # relative links between the documents
        for link in re.findall(r"\]\(([\w.-]+\.md)\)", doc.read_text()):
            assert (doc.parent / link).is_file(), f"{doc.name} links to missing {link}"


def test_formats_sections_exist():
    formats = (REPO_ROOT / "docs" / "formats.md").read_text()
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", formats, re.M))
    cited = set()
    for _, text in texts():
        for m in re.finditer(r"docs/formats\.md`{0,2}\s*((?:§[\d.]+(?:,\s*)?)+)", text):
            cited |= {s.rstrip(".") for s in re.findall(r"§([\d.]+)", m.group(1))}
    assert cited and sorted(cited - sections) == []


@pytest.mark.skipif(shutil.which("git") is None or not (REPO_ROOT / ".git").exists(),
                    reason="needs a git checkout")
def test_checkpoints_are_ignored_by_git():
    for path in ("out/ddp_checkpoint.pt", "ddp_checkpoint.pt", "model.ckpt"):
        assert subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "-q", path]).returncode == 0, path


def test_ddp_example_writes_its_checkpoint_into_out():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "train_ddp.py"), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "default: out/ddp_checkpoint.pt" in " ".join(result.stdout.split())
