"""Notebooks and Markdown/reST: discovery, positions per cell, byte-exact write-back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from fixture_cases import FIXTURES

from bnblint.cli import main
from bnblint.documents.markdown import MarkdownDocument, RstDocument
from bnblint.documents.notebook import Notebook

NOTEBOOKS = sorted(p for p in FIXTURES.rglob("*.ipynb") if "broken" not in p.name)


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_fixture_notebooks_are_valid_nbformat(path: Path) -> None:
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))


def test_fix_keeps_every_other_byte_and_valid_nbformat(tmp_path: Path) -> None:
    src = FIXTURES / "notebooks" / "qlora_multi_cell.ipynb"
    target = tmp_path / "nb.ipynb"
    shutil.copy(src, target)
    before = json.loads(target.read_text(encoding="utf-8"))
    result = invoke("check", "--fix", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    nbformat.validate(nbformat.reads(text, as_version=4))
    after = json.loads(text)
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert changed == [3, 7]  # the config cell and the load cell, nothing else
    for i in changed:
        a, b = dict(before["cells"][i]), dict(after["cells"][i])
        a.pop("source"), b.pop("source")
        assert a == b  # outputs, metadata, ids untouched
    assert before["metadata"] == after["metadata"]
    # Masked IPython syntax is restored exactly.
    assert after["cells"][1]["source"] == [
        "%pip install -q bitsandbytes accelerate\n",
        "!nvidia-smi",
    ]
    assert "files = !ls\n" in after["cells"][7]["source"]
    assert text.endswith("}\n") and list(after) == list(before)


def test_fix_on_a_clean_notebook_is_byte_identical(tmp_path: Path) -> None:
    src = FIXTURES / "silent" / "notebook_clean.ipynb"
    target = tmp_path / "clean.ipynb"
    shutil.copy(src, target)
    assert invoke("check", "--fix", str(target)).exit_code == 0
    assert target.read_bytes() == src.read_bytes()


def test_text_output_names_the_cell(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "notebooks" / "qlora_multi_cell.ipynb", tmp_path / "nb.ipynb")
    result = invoke("check", str(tmp_path / "nb.ipynb"))
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'nb.ipynb'}:cell 3:1:14: BNB002")
    assert lines[1].startswith(f"{tmp_path / 'nb.ipynb'}:cell 7:1:9: BNB001")


def test_json_cell_field(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "notebooks" / "qlora_multi_cell.ipynb", tmp_path / "nb.ipynb")
    data = json.loads(invoke("check", "--output-format", "json", str(tmp_path)).output)
    assert [(d["code"], d["cell"], d["location"]["row"]) for d in data] == [
        ("BNB002", 3, 1),
        ("BNB001", 7, 1),
    ]


def test_broken_notebook_is_one_error_line(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "notebooks" / "broken_json.ipynb", tmp_path / "b.ipynb")
    result = CliRunner().invoke(main, ["check", str(tmp_path / "b.ipynb")])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if "cannot parse" in line]
    assert len(errors) == 1 and "invalid notebook JSON" in errors[0]


def test_discovery_of_notebooks_and_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(FIXTURES / "notebooks" / "qlora_multi_cell.ipynb", tmp_path / "nb.ipynb")
    shutil.copy(FIXTURES / "docs" / "tutorial.md", tmp_path / "README.md")
    monkeypatch.chdir(tmp_path)
    assert "nb.ipynb" in invoke("check", ".").output
    assert "README.md" not in invoke("check", ".").output
    assert "nb.ipynb" not in invoke("check", "--no-notebooks", ".").output
    assert "README.md:8:14: BNB002" in invoke("check", "--docs", ".").output
    # Named explicitly, a Markdown file is always checked.
    assert "README.md:14:9: BNB001" in invoke("check", "README.md").output
    (tmp_path / "pyproject.toml").write_text("[tool.bnblint]\ninclude-docs = true\n")
    assert "README.md:8:14" in invoke("check", ".").output
    (tmp_path / "pyproject.toml").write_text('[tool.bnblint]\nextend-exclude = ["*.ipynb"]\n')
    assert "nb.ipynb" not in invoke("check", ".").output


def test_markdown_fix_rewrites_only_blocks(tmp_path: Path) -> None:
    target = tmp_path / "t.md"
    shutil.copy(FIXTURES / "docs" / "tutorial.md", target)
    before = target.read_text().splitlines()
    invoke("check", "--fix", str(target))
    after = target.read_text().splitlines()
    prose = [line for line in before if line and not line.startswith((" ", "model", "bnb"))]
    assert all(line in after for line in prose)


def test_unparsable_blocks_are_skipped() -> None:
    doc = MarkdownDocument.from_text("```python\n>>> x = 1\n```\n\n```python\ny = (\n```\n")
    assert doc.chunks == []
    rst = RstDocument.from_text(".. code-block:: python\n\n   x = 1\n\nprose\n")
    assert [c.text for c in rst.chunks] == ["x = 1\n"]
    assert rst.chunks[0].first_line == 3 and rst.chunks[0].indent == "   "


def test_notebook_masking_only_when_needed() -> None:
    raw = json.dumps(
        {
            "cells": [
                {"cell_type": "code", "metadata": {}, "source": ['s = """why?\n', '!not magic"""']},
                {"cell_type": "code", "metadata": {}, "source": ["%time f()\n", "x = 1"]},
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    nb = Notebook.from_text(raw)
    assert nb.chunks[0].text == 's = """why?\n!not magic"""\n'  # valid Python: untouched
    assert nb.chunks[1].text.startswith("pass  # bnblint-mask")
    assert nb.rebuild(nb.program) == raw


def test_add_noqa_in_cells_and_blocks(tmp_path: Path) -> None:
    notebook = tmp_path / "nb.ipynb"
    markdown = tmp_path / "t.md"
    shutil.copy(FIXTURES / "notebooks" / "qlora_multi_cell.ipynb", notebook)
    shutil.copy(FIXTURES / "docs" / "tutorial.md", markdown)
    result = invoke("check", "--add-noqa", str(notebook), str(markdown))
    assert result.exit_code == 0
    assert invoke("check", str(notebook), str(markdown)).output == "All checks passed!\n"
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    assert cells[3]["source"][0] == "bnb_config = BitsAndBytesConfig(  # noqa: BNB002\n"
    nbformat.validate(nbformat.reads(notebook.read_text(encoding="utf-8"), as_version=4))
    assert "bnb_config = BitsAndBytesConfig(load_in_4bit=True)  # noqa: BNB002\n" in (
        markdown.read_text()
    )
