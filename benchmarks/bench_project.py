"""Project-wide analysis cost: a generated project of N files with configs, builders and callers
spread over packages.

    python benchmarks/bench_project.py [--files 500] [--runs 5]

Measures, in one process and as subprocesses:
- ``bnblint check`` over the whole tree (cold: a fresh process);
- an editor keystroke: ``runner.lint_one_text`` (what the language server and flake8 call) on one
  file of the project, warm (the project's summaries cached), median of ``--runs``;
- ``ruff check --select E9`` over the same tree, for scale.
Not a test: timings depend on the machine, so nothing here asserts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUANT = """\
import torch
from transformers import BitsAndBytesConfig

DTYPE = torch.bfloat16


def config_{i}(bits):
    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True{dtype})
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return None
"""
BUILDER = """\
from transformers import AutoModelForCausalLM

from .quant_{i} import config_{i}


def build_{i}(path, bits=4, **kwargs):
    if bits == 16:
        kwargs["dtype"] = "auto"
    config = config_{i}(bits)
    return AutoModelForCausalLM.from_pretrained(path, quantization_config=config, **kwargs)
"""
CALLER = """\
from pkg{p}.builder_{i} import build_{i}

model = build_{i}("m", bits=8, device_map="auto")
"""
FILLER = """\
import os


def helper_{i}(x):
    return os.path.join(str(x), "{i}")


class Thing{i}:
    def __init__(self):
        self.value = {i}
"""


def make_project(files: int, into: Path) -> Path:
    (into / "pyproject.toml").write_text('[project]\nname = "gen"\n')
    per_package = 20
    n = 0
    p = 0
    while n < files:
        pkg = into / f"pkg{p}"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        n += 1
        for i in range(per_package):
            if n >= files:
                break
            k = p * per_package + i
            if i % 5 == 0:
                dtype = "" if i % 10 == 0 else ", bnb_4bit_compute_dtype=DTYPE"
                (pkg / f"quant_{k}.py").write_text(QUANT.format(i=k, dtype=dtype))
                (pkg / f"builder_{k}.py").write_text(BUILDER.format(i=k))
                (into / f"train_{k}.py").write_text(CALLER.format(i=k, p=p))
                n += 3
            else:
                (pkg / f"mod_{k}.py").write_text(FILLER.format(i=k))
                n += 1
        p += 1
    return into


def best(cmd: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def keystroke(tree: Path, runs: int) -> tuple[float, float]:
    """(first, warm median) seconds of lint_one_text on one builder of the project."""
    import os

    from bnblint.runner import lint_one_text
    from bnblint.settings import Settings

    os.chdir(tree)
    target = next(tree.glob("pkg0/builder_*.py"))
    text = target.read_text()
    settings = Settings(root=tree)
    start = time.perf_counter()
    lint_one_text(text, str(target), settings)
    first = time.perf_counter() - start
    warm = []
    for i in range(runs):
        edited = text + f"\n# edit {i}\n"  # a keystroke: new text, same imports
        start = time.perf_counter()
        lint_one_text(edited, str(target), settings)
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bnblint-project-"))
    try:
        tree = make_project(args.files, tmp)
        count = sum(1 for _ in tree.rglob("*.py"))
        check = best(
            [sys.executable, "-m", "bnblint", "check", "--exit-zero", "."], args.runs, tree
        )
        ruff = shutil.which("ruff")
        ruff_cmd = [ruff or "ruff", "check", "--select", "E9", "--no-cache", "--exit-zero", "."]
        ruff_time = best(ruff_cmd, args.runs, tree) if ruff else float("nan")
        first, warm = keystroke(tree, args.runs)
        print(f"files {count}")
        print(f"check (whole tree, fresh process)  {check:.3f}s   ruff E9 {ruff_time:.3f}s")
        print(f"keystroke, first (cold summaries)  {first * 1000:.0f} ms")
        print(f"keystroke, warm (median of {args.runs})      {warm * 1000:.0f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
