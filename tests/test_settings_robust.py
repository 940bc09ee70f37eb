"""``[tool.bnblint]`` discovery and loading through the real CLI and flake8: a malformed
``pyproject.toml`` is an error when it is (or may be) bnblint's, and is passed by when not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BAD = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("m", quantization_config=quantization_config)
"""
BNB002 = ":3:23: BNB002"
BNB001 = ":4:9: BNB001"


def bnblint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnblint", "check", "--no-color", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def flake8(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "BNB", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tree(tmp_path: Path, outer: bytes | str, inner: bytes | str | None = None) -> Path:
    """tmp/pyproject.toml = outer; tmp/proj/pyproject.toml = inner (if given); proj/m.py."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for path, content in ((tmp_path / "pyproject.toml", outer), (proj / "pyproject.toml", inner)):
        if isinstance(content, str):
            path.write_text(content)
        elif content is not None:
            path.write_bytes(content)
    (proj / "m.py").write_text(BAD)
    return proj


@pytest.mark.parametrize("tool", ["5", '"bnblint"', '["bnblint"]', "true"])
def test_tool_that_is_not_a_table_is_passed_by(tmp_path: Path, tool: str) -> None:
    # An outer pyproject.toml meant for bnblint, an inner one with a `tool` of another type:
    # the inner one is not ours, the outer one applies.
    proj = tree(tmp_path, '[tool.bnblint]\nignore = ["BNB001"]\n', f'name = "x"\ntool = {tool}\n')
    out = bnblint("m.py", cwd=proj)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert [line.split(" ")[0] for line in out.stdout.splitlines()[:-1]] == ["m.py:3:23:"]
    f8 = flake8("m.py", cwd=proj)
    assert "Traceback" not in f8.stderr
    assert [line.split(" ")[0] for line in f8.stdout.splitlines()] == ["m.py:3:23:"]


def test_tool_not_a_table_named_by_config_is_an_error(tmp_path: Path) -> None:
    proj = tree(tmp_path, "tool = 5\n")
    out = bnblint("--config", str(tmp_path / "pyproject.toml"), "m.py", cwd=proj)
    assert out.returncode == 2
    assert out.stderr == (
        f"bnblint: error: {tmp_path / 'pyproject.toml'}: `tool` must be a table, got int\n"
    )


def test_deeply_nested_toml(tmp_path: Path) -> None:
    deep = "x = " + "[" * 5000 + "]" * 5000 + "\n"
    # Unrelated and unparsable (too deep): passed by, the defaults apply.
    proj = tree(tmp_path, deep)
    out = bnblint("m.py", cwd=proj)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "RecursionError" not in out.stderr
    assert f"m.py{BNB002}" in out.stdout and f"m.py{BNB001}" in out.stdout
    # The same inside [tool.bnblint]: an error naming the file.
    (tmp_path / "pyproject.toml").write_text("[tool.bnblint]\n" + deep)
    out = bnblint("m.py", cwd=proj)
    assert out.returncode == 2
    assert out.stderr == (
        f"bnblint: error: {tmp_path / 'pyproject.toml'}: invalid TOML: nested too deeply\n"
    )


@pytest.mark.parametrize(
    "table",
    [
        '[tool.bnblint]\nselect = ["BNB001"\n',
        '[tool.bnblint.per-file-ignores]\n"a" = \n',
        'tool.bnblint.select = ["BNB001"]\n[project\n',
        '[tool]\nblack = {}\nbnblint = { select = ["BNB001"] \n',
    ],
)
def test_invalid_toml_holding_our_table_is_an_error(tmp_path: Path, table: str) -> None:
    proj = tree(tmp_path, '[tool.bnblint]\nignore = ["BNB001"]\n', table)
    out = bnblint("m.py", cwd=proj)
    assert out.returncode == 2, out.stdout
    assert out.stdout == ""
    assert out.stderr.startswith(f"bnblint: error: {proj / 'pyproject.toml'}: invalid TOML: ")
    assert "(at " in out.stderr  # the parser's own message, with its position
    assert len(out.stderr.splitlines()) == 1
    f8 = flake8("m.py", cwd=proj)
    assert f8.returncode != 0
    assert "invalid TOML" in f8.stdout + f8.stderr


def test_non_utf8_toml_holding_our_table_is_an_error(tmp_path: Path) -> None:
    proj = tree(tmp_path, "", b'[tool.bnblint]\n# caf\xe9\nselect = ["BNB001"]\n')
    out = bnblint("m.py", cwd=proj)
    assert out.returncode == 2
    assert out.stderr == (
        f"bnblint: error: {proj / 'pyproject.toml'}: invalid TOML: not UTF-8 "
        "(invalid continuation byte at byte 20)\n"
    )


@pytest.mark.parametrize(
    "content",
    [b"[project\nname = 'x'\n", b"[project]\nname = 'caf\xe9'\n", b"[tool]\nruff = {\n"],
)
def test_broken_unrelated_pyproject_is_passed_by(tmp_path: Path, content: bytes) -> None:
    # Nearer, broken, and not bnblint's: the outer table still applies.
    proj = tree(tmp_path, '[tool.bnblint]\nignore = ["BNB002"]\n', content)
    out = bnblint("m.py", cwd=proj)
    assert out.returncode == 1, out.stderr
    assert out.stderr == ""
    assert [line.split(" ")[0] for line in out.stdout.splitlines()[:-1]] == ["m.py:4:9:"]
    # Named by --config, the same file is an error: the user asked for it.
    named = bnblint("--config", "pyproject.toml", "m.py", cwd=proj)
    assert named.returncode == 2
    assert named.stderr.startswith("bnblint: error: pyproject.toml: invalid TOML: ")


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
def test_unreadable_pyproject_is_an_error(tmp_path: Path) -> None:
    # Root reads any file, so the unreadable file is a link to one that fails to read for
    # everyone: /proc/self/mem is a regular file whose offset 0 gives EIO. Its content being
    # unknown, it may hold [tool.bnblint]: silently using other settings would be worse.
    proj = tree(tmp_path, "")
    (proj / "pyproject.toml").symlink_to("/proc/self/mem")
    out = bnblint("m.py", cwd=proj)
    assert out.returncode == 2
    assert out.stderr == (
        f"bnblint: error: {proj / 'pyproject.toml'}: cannot read: Input/output error\n"
    )


def test_fifo_pyproject_is_passed_by_and_does_not_hang(tmp_path: Path) -> None:
    proj = tree(tmp_path, '[tool.bnblint]\nignore = ["BNB002"]\n')
    os.mkfifo(proj / "pyproject.toml")
    out = bnblint("m.py", cwd=proj)  # the timeout fails the test if it blocks
    assert out.returncode == 1
    assert [line.split(" ")[0] for line in out.stdout.splitlines()[:-1]] == ["m.py:4:9:"]
    named = bnblint("--config", "pyproject.toml", "m.py", cwd=proj)
    assert named.returncode == 2
    assert named.stderr == "bnblint: error: pyproject.toml: cannot read: not a regular file\n"


# ---------------------------------------------------------------------------------------------
# per-file-ignores: the exclude dialect (git's globs)
# ---------------------------------------------------------------------------------------------


def test_per_file_ignores_use_git_globs(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.bnblint]\n"
        'ignore = ["BNB001"]\n'
        "[tool.bnblint.per-file-ignores]\n"
        '"src/*.py" = ["BNB002"]\n'  # src/a.py, not src/a/b.py: `*` stops at "/"
        '"**/deep.py" = ["BNB002"]\n'  # at any depth, including the root
        '"gen_?.py" = ["BNB002"]\n'  # no "/": the name, at any depth
        '"legacy" = ["BNB002"]\n'  # a directory name: everything below it
        '"/top.py" = ["BNB002"]\n'  # anchored to the pyproject.toml directory
    )
    files = [
        "src/a.py",
        "src/a/b.py",
        "deep.py",
        "x/y/deep.py",
        "x/gen_1.py",
        "x/gen_10.py",
        "x/legacy/old/m.py",
        "top.py",
        "x/top.py",
    ]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(BAD)
    out = bnblint(".", cwd=tmp_path)
    flagged = sorted(line.split(":")[0] for line in out.stdout.splitlines()[:-1])
    assert flagged == ["src/a/b.py", "x/gen_10.py", "x/top.py"]
    # Named one by one, from another directory: the same files, relative to the config.
    sub = tmp_path / "x"
    out = bnblint(*(f"../{rel}" for rel in files), cwd=sub)
    flagged = sorted(line.split(":")[0] for line in out.stdout.splitlines()[:-1])
    assert flagged == ["../src/a/b.py", "../x/gen_10.py", "../x/top.py"]


def test_per_file_ignores_and_exclude_select_the_same_files(tmp_path: Path) -> None:
    # The same pattern in both places covers the same files.
    patterns = ["src/*.py", "**/deep.py", "tests/", "t*s/**/*_x.py", "/a.py", "[ab].py"]
    files = ["a.py", "b.py", "src/a.py", "src/a/b.py", "q/deep.py", "tests/u/v.py", "tabs/k_x.py"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(BAD)
    for pattern in patterns:
        (tmp_path / "pyproject.toml").write_text(
            f'[tool.bnblint]\nignore = ["BNB001"]\nextend-exclude = [{pattern!r}]\n'
        )
        kept = {line.split(":")[0] for line in bnblint(".", cwd=tmp_path).stdout.splitlines()[:-1]}
        (tmp_path / "pyproject.toml").write_text(
            f'[tool.bnblint]\nignore = ["BNB001"]\nper-file-ignores = {{ {pattern!r} = ["BNB"] }}\n'
        )
        flagged = {
            line.split(":")[0] for line in bnblint(".", cwd=tmp_path).stdout.splitlines()[:-1]
        }
        assert flagged == kept, pattern
        assert kept != set(files), pattern  # each pattern matches something
