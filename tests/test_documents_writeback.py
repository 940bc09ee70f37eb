"""Notebook and Markdown positions and write-back (issue 14, items 5, 8 and 9), through the real
command line: rows by the tokenizer's line rule, sentinels user text cannot forge, and ``--fix``
changing only the bytes of its edits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

IMPORTS = "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
CONFIG = "cfg = BitsAndBytesConfig(load_in_4bit=True)\n"
FIXED = "cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)\n"
LOAD = "m = AutoModelForCausalLM.from_pretrained('m', quantization_config=cfg, device_map='auto')\n"
# Characters str.splitlines breaks at, which are not line ends in Python.
NOT_LINE_ENDS = ["\u2028", "\u2029", "\x0c", "\x0b", "\x1c", "\x85"]


def bnblint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    return subprocess.run(
        [sys.executable, "-m", "bnblint", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )


def notebook(*sources: object, **top: object) -> str:
    """A notebook as nbformat writes one (ensure_ascii off, indent 1)."""
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s}
        for s in sources
    ]
    data = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5, **top}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def fix(path: Path, text: str) -> str:
    """Write ``text``, run ``check --fix`` on it, and return what it wrote (checked to be a
    fixed point: a second ``--fix`` changes nothing)."""
    path.write_bytes(text.encode("utf-8"))
    result = bnblint("check", "--fix", path.name, cwd=path.parent)
    assert "Traceback" not in result.stderr and result.returncode == 0, result.stderr
    written = path.read_bytes().decode("utf-8")
    again = bnblint("check", "--fix", path.name, cwd=path.parent)
    assert again.returncode == 0 and path.read_bytes().decode("utf-8") == written
    return written


def report(path: Path, text: str) -> list[str]:
    path.write_bytes(text.encode("utf-8"))
    result = bnblint("check", "--output-format", "concise", path.name, cwd=path.parent)
    assert "Traceback" not in result.stderr, result.stderr
    return [line.split(" [")[0] for line in result.stdout.splitlines()]


# -- positions after characters str.splitlines breaks at ------------------------------------------


@pytest.mark.parametrize("char", NOT_LINE_ENDS, ids=repr)
def test_notebook_rows_after_a_non_line_end_in_a_string(tmp_path: Path, char: str) -> None:
    text = notebook([IMPORTS, f"s = 'a{char}b{char}c'\n"], ["x = 1\n", CONFIG, LOAD])
    assert report(tmp_path / "nb.ipynb", text) == ["nb.ipynb:cell 2:2:7: BNB002"]
    # The cell with the character is rewritten (import torch) and keeps it, in one item.
    expected = notebook(
        ["import torch\n", IMPORTS, f"s = 'a{char}b{char}c'\n"], ["x = 1\n", FIXED, LOAD]
    )
    assert fix(tmp_path / "nb.ipynb", text) == expected


MARKDOWN = (
    "# Title\n"
    "\n"
    "```python\n"
    f"{IMPORTS}"
    "s = 'a{c}b{c}c'\n"
    "```\n"
    "\n"
    "Prose{c}with it too.\n"
    "\n"
    "```python\n"
    f"{CONFIG}"
    f"{LOAD}"
    "```\n"
)


@pytest.mark.parametrize("char", NOT_LINE_ENDS, ids=repr)
def test_markdown_rows_after_a_non_line_end(tmp_path: Path, char: str) -> None:
    text = MARKDOWN.format(c=char)
    assert report(tmp_path / "t.md", text) == ["t.md:11:7: BNB002"]
    expected = text.replace(IMPORTS, "import torch\n" + IMPORTS).replace(CONFIG, FIXED)
    assert fix(tmp_path / "t.md", text) == expected


def test_rst_rows_after_a_non_line_end(tmp_path: Path) -> None:
    text = (
        ".. code-block:: python\n\n"
        f"   {IMPORTS}   s = 'a\u2028b'\n\n"
        "Prose\u2029here.\n\n"
        f".. code-block:: python\n\n   {CONFIG}   {LOAD}"
    )
    assert report(tmp_path / "g.rst", text) == ["g.rst:10:10: BNB002"]
    expected = text.replace(f"   {IMPORTS}", f"   import torch\n   {IMPORTS}")
    assert fix(tmp_path / "g.rst", text) == expected.replace(CONFIG, FIXED)


# -- sentinels and masks user text cannot forge ------------------------------------------------


def test_a_mask_comment_in_user_code_is_kept(tmp_path: Path) -> None:
    cell = [
        "%pip install -q bitsandbytes\n",
        IMPORTS,
        "flag = 1  # bnblint-mask 0\n",
        "other = 2  # bnblint-mask-0123456789abcdef 0\n",
        CONFIG,
        LOAD,
    ]
    text = notebook(cell)
    assert report(tmp_path / "nb.ipynb", text) == ["nb.ipynb:cell 1:5:7: BNB002"]
    expected = notebook([cell[0], "import torch\n", *cell[1:4], FIXED, LOAD])
    assert fix(tmp_path / "nb.ipynb", text) == expected


def test_a_chunk_comment_in_user_code_does_not_move_findings(tmp_path: Path) -> None:
    first = [IMPORTS, "# bnblint-chunk 1\n", "# bnblint-chunk 2\n", "x = 1\n"]
    text = notebook(first, [CONFIG, LOAD])
    assert report(tmp_path / "nb.ipynb", text) == ["nb.ipynb:cell 2:1:7: BNB002"]
    expected = notebook(["import torch\n", *first], [FIXED, LOAD])
    assert fix(tmp_path / "nb.ipynb", text) == expected

    md = f"```python\n{IMPORTS}# bnblint-chunk 1\nx = 1\n```\n\n```python\n{CONFIG}{LOAD}```\n"
    assert report(tmp_path / "t.md", md) == ["t.md:8:7: BNB002"]
    expected_md = md.replace(IMPORTS, "import torch\n" + IMPORTS).replace(CONFIG, FIXED)
    assert fix(tmp_path / "t.md", md) == expected_md


# -- Markdown write-back keeps every unfixed byte -------------------------------------------------


def test_markdown_fix_keeps_strings_whitespace_and_line_ends(tmp_path: Path) -> None:
    block = (
        f"{IMPORTS}"
        'doc = """first\n'
        "   \n"  # a whitespace-only line inside a string
        'last\x0cpage\u2028next"""\n'
        f"{CONFIG}"
        f"{LOAD}"
    )
    # LF lines, one CRLF line in the prose, an indented block with a blank line of spaces.
    text = (
        "# Title\r\n\n```python\n"
        + block
        + "```\n\n- item:\n\n  ```python\n"
        + "  c2 = BitsAndBytesConfig(load_in_4bit=True)  \n"  # trailing spaces kept
        + "    \n"
        + "  " + LOAD.replace("cfg", "c2")
        + "  ```\n"
    )
    expected = (
        text.replace(IMPORTS, "import torch\n" + IMPORTS)
        .replace(CONFIG, FIXED)
        .replace(
            "  c2 = BitsAndBytesConfig(load_in_4bit=True)  \n",
            "  " + FIXED.replace("cfg", "c2").replace("\n", "  \n"),
        )
    )
    assert fix(tmp_path / "t.md", text) == expected


def test_markdown_fix_in_a_crlf_file_writes_crlf(tmp_path: Path) -> None:
    text = f"Intro\n\n```python\n{IMPORTS}{CONFIG}{LOAD}```\n".replace("\n", "\r\n")
    expected = f"Intro\n\n```python\nimport torch\n{IMPORTS}{FIXED}{LOAD}```\n"
    assert fix(tmp_path / "t.md", text) == expected.replace("\n", "\r\n")


# -- notebook write-back keeps every unfixed byte -------------------------------------------------


def test_a_cell_with_non_string_source_items_is_left_alone(tmp_path: Path) -> None:
    other = [IMPORTS, CONFIG.replace("cfg", "c2"), LOAD.replace("cfg", "c2")]
    text = notebook([IMPORTS, CONFIG, 5, None], other)
    # Not nbformat (items must be strings): the cell is neither linted nor rewritten.
    assert report(tmp_path / "nb.ipynb", text) == ["nb.ipynb:cell 2:2:6: BNB002"]
    fixed_other = ["import torch\n", IMPORTS, FIXED.replace("cfg", "c2"), other[2]]
    assert fix(tmp_path / "nb.ipynb", text) == notebook([IMPORTS, CONFIG, 5, None], fixed_other)


def _load(n: int) -> str:
    return LOAD.rstrip("\n").replace("m =", f"m{n} =").replace("=cfg", f"=c{n}")


def _config(n: int, fixed: bool = False) -> str:
    extra = ", bnb_4bit_compute_dtype=torch.float16" if fixed else ""
    return f"c{n} = BitsAndBytesConfig(load_in_4bit=True{extra})"


# Hand-written layouts: a string with escapes, a one-line list, several lines in one item, one
# line over two items, items split where nbformat splits (str.splitlines: at \u2028).
RAW = r"""{
  "cells": [
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,
     "source": "# caf\u00e9 \/ setup\n@imports@\n"},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,
     "source": ["@c2@\n", "@m2@"]},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,
     "source": [
         "@c3@\n@m3@\n"
     ]},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,
     "source": ["@c4a@", "@c4b@\n", "@m4@"]},
    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,
     "source": [
      "s = 'a\u2028",
      "b'\n",
      "@c5@\n",
      "@m5@"
     ]}
  ],
  "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
  "nbformat": 4, "nbformat_minor": 5
}"""


def test_notebook_fix_keeps_the_source_layout_and_escapes(tmp_path: Path) -> None:
    def layout(fixed: bool) -> str:
        c4 = _config(4, fixed)
        cut = c4.index("load_in")
        values = {"imports": IMPORTS.rstrip("\n"), "c4a": c4[:cut], "c4b": c4[cut:]}
        for n in (2, 3, 4, 5):
            values[f"c{n}"], values[f"m{n}"] = _config(n, fixed), _load(n)
        text = RAW
        for name, value in values.items():
            text = text.replace(f"@{name}@", value)
        return text

    text = layout(False)
    json.loads(text)
    assert report(tmp_path / "nb.ipynb", text) == [
        "nb.ipynb:cell 2:1:6: BNB002",
        "nb.ipynb:cell 3:1:6: BNB002",
        "nb.ipynb:cell 4:1:6: BNB002",
        "nb.ipynb:cell 5:2:6: BNB002",
    ]
    expected = layout(True).replace("setup\\nfrom", "setup\\nimport torch\\nfrom")
    assert expected.count("import torch") == 1
    assert fix(tmp_path / "nb.ipynb", text) == expected


def test_notebook_fix_keeps_a_missing_final_newline_and_cr_lines(tmp_path: Path) -> None:
    cell = [IMPORTS.replace("\n", "\r\n"), "x = 1\r", CONFIG, LOAD.rstrip("\n")]
    text = notebook(cell)
    fixed = ["import torch\r\n", *cell[:2], FIXED, cell[3]]
    assert fix(tmp_path / "nb.ipynb", text) == notebook(fixed)


# -- notebook formats and malformed notebooks -----------------------------------------------------


V3 = {
    "metadata": {"name": "old"},
    "nbformat": 3,
    "nbformat_minor": 0,
    "worksheets": [
        {
            "cells": [
                {"cell_type": "markdown", "metadata": {}, "source": ["# Old\n"]},
                {
                    "cell_type": "code",
                    "collapsed": False,
                    "input": [IMPORTS],
                    "language": "python",
                    "metadata": {},
                    "outputs": [],
                },
            ],
            "metadata": {},
        },
        {
            "cells": [
                {
                    "cell_type": "code",
                    "collapsed": False,
                    "input": [CONFIG, LOAD.rstrip("\n")],
                    "language": "python",
                    "metadata": {},
                    "outputs": [],
                }
            ],
            "metadata": {},
        },
    ],
}


def test_nbformat_3_notebooks_are_linted_and_fixed(tmp_path: Path) -> None:
    text = json.dumps(V3, indent=1)
    assert report(tmp_path / "old.ipynb", text) == ["old.ipynb:cell 2:1:7: BNB002"]
    fixed = json.loads(text)
    fixed["worksheets"][0]["cells"][1]["input"].insert(0, "import torch\n")
    fixed["worksheets"][1]["cells"][0]["input"][0] = FIXED
    assert fix(tmp_path / "old.ipynb", text) == json.dumps(fixed, indent=1)


def test_other_nbformat_versions_and_deep_nesting_are_one_error_line_each(tmp_path: Path) -> None:
    v2 = json.dumps({**V3, "nbformat": 2}, indent=1)
    (tmp_path / "v2.ipynb").write_text(v2, encoding="utf-8")
    # Valid JSON nested far deeper than Python's recursion limit, in a cell's outputs.
    source, nested = json.dumps(IMPORTS + CONFIG + LOAD), "[" * 100_000 + "]" * 100_000
    deep = f'{{"cells": [{{"cell_type": "code", "source": {source}, "outputs": {nested}}}]}}'
    (tmp_path / "deep.ipynb").write_text(deep, encoding="utf-8")
    # Valid Python too deep for the parser, in a cell and in a Markdown block.
    expression = "x = " + "+".join(["1"] * 5000) + "\n"
    (tmp_path / "deep_code.ipynb").write_text(
        notebook([IMPORTS, CONFIG, LOAD], [expression]), encoding="utf-8"
    )
    (tmp_path / "deep.md").write_text(
        f"# Deep\n\n```python\n{IMPORTS}{CONFIG}{LOAD}{expression}```\n", encoding="utf-8"
    )
    (tmp_path / "good.ipynb").write_text(notebook([IMPORTS, CONFIG, LOAD]), encoding="utf-8")
    names = ["v2.ipynb", "deep.ipynb", "deep_code.ipynb", "deep.md", "good.ipynb"]
    result = bnblint("check", *names, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert sorted(result.stderr.splitlines()) == [
        "deep.ipynb: cannot parse: invalid notebook JSON: nested too deeply",
        "deep.md: cannot parse: the code block at line 4 is nested too deeply to parse",
        "deep_code.ipynb: cannot parse: cell 2 is nested too deeply to parse",
        "v2.ipynb: cannot parse: nbformat 2 notebooks are not supported; convert with"
        " `jupyter nbconvert --to notebook --nbformat 4`",
    ]
    assert "good.ipynb:cell 1:2:7: BNB002" in result.stdout
