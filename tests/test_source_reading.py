"""Reading sources through the real CLI: only regular files, of a bounded size, in an encoding
Python itself can read; each refusal is one line on stderr and the run goes on (exit 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bnblint.source import MAX_NOTEBOOK_BYTES, MAX_SOURCE_BYTES

BAD = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("m", quantization_config=quantization_config)
"""


def bnblint(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnblint", "check", "--no-color", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test instead of the suite
    )


def flagged(out: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted({line.split(":")[0] for line in out.stdout.splitlines() if ": BNB" in line})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "good.py").write_text(BAD)
    return tmp_path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_named_fifo_is_refused_without_hanging(tree: Path) -> None:
    os.mkfifo(tree / "pipe.py")
    out = bnblint("pipe.py", "good.py", cwd=tree, timeout=30)
    assert out.returncode == 1
    assert out.stderr == "pipe.py: cannot read: not a regular file\n"
    assert flagged(out) == ["good.py"]  # the run went on
    # Walking a directory with a FIFO in it passes it by, as any non-file.
    walked = bnblint(".", cwd=tree, timeout=30)
    assert walked.stderr == ""
    assert flagged(walked) == ["good.py"]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_link_to_a_device_is_refused_unread(tree: Path) -> None:
    (tree / "zero.py").symlink_to("/dev/zero")
    (tree / "zero.ipynb").symlink_to("/dev/zero")
    out = bnblint("zero.py", "zero.ipynb", "good.py", cwd=tree, timeout=30)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "zero.ipynb: cannot read: not a regular file",
        "zero.py: cannot read: not a regular file",
    ]
    assert flagged(out) == ["good.py"]


def test_too_large_files_are_refused(tree: Path) -> None:
    big = tree / "big.py"
    with big.open("wb") as fh:  # sparse: the size is what counts, not the disk
        fh.truncate(MAX_SOURCE_BYTES + 1)
    nb = tree / "big.ipynb"
    with nb.open("wb") as fh:
        fh.truncate(MAX_NOTEBOOK_BYTES + 1)
    # A notebook may be larger than a module (outputs, images).
    ok = tree / "ok.ipynb"
    ok.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    with ok.open("ab") as fh:
        fh.write(b" " * (MAX_SOURCE_BYTES + 1))
    out = bnblint(".", cwd=tree)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "big.ipynb: cannot read: file too large (64.1 MiB > 64 MiB)",
        "big.py: cannot read: file too large (10.1 MiB > 10 MiB)",
    ]
    assert flagged(out) == ["good.py"]


def test_utf16_coding_cookie_is_an_error(tree: Path) -> None:
    # Python refuses to run it ("encoding problem: utf-16"); decoded anyway, it is CJK text
    # that lints clean, which is what bnblint used to say.
    (tree / "cookie.py").write_bytes(b"# -*- coding: utf-16 -*-\n" + BAD.encode())
    (tree / "plain.py").write_bytes(b"# coding: utf-16\nx = 1\n")  # no word the prefilter wants
    out = bnblint("cookie.py", "plain.py", "good.py", cwd=tree)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "cookie.py: cannot read: unsupported encoding utf-16 declared in the coding cookie",
        "plain.py: cannot read: unsupported encoding utf-16 declared in the coding cookie",
    ]
    assert flagged(out) == ["good.py"]
    run = subprocess.run([sys.executable, "plain.py"], cwd=tree, capture_output=True, text=True)
    assert "encoding problem: utf-16" in run.stderr


def test_utf16_file_with_bom_is_an_error(tree: Path) -> None:
    (tree / "wide.py").write_bytes(BAD.encode("utf-16"))
    out = bnblint("wide.py", cwd=tree)
    assert out.returncode == 1
    assert out.stderr.startswith("wide.py: cannot decode: ")
    assert "All checks passed!" not in out.stdout


def test_ascii_compatible_cookies_still_read(tree: Path) -> None:
    latin = "#!/usr/bin/env python\n# -*- coding: latin-1 -*-\n# café\n" + BAD
    (tree / "latin.py").write_bytes(latin.encode("latin-1"))
    (tree / "bom.py").write_bytes(b"\xef\xbb\xbf# coding: utf-8\n" + BAD.encode())
    out = bnblint("latin.py", "bom.py", cwd=tree)
    assert out.stderr == ""
    assert flagged(out) == ["bom.py", "latin.py"]
