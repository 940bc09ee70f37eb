"""Time bnblint against ``ruff check --select E9`` on a large tree and on a dense one.

    python benchmarks/bench.py [--large PATH] [--copies N] [--runs N]

- large: an installed ``transformers`` package by default (thousands of files, almost none of which
  mention bitsandbytes: measures the byte prefilter and discovery);
- dense: every fixture, copied N times (every file is parsed and analysed: measures the analysis).

Both tools run as subprocesses, as a user runs them; the best of ``--runs`` wall times is kept.
Not a test: timings depend on the machine, so nothing here asserts.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def best_time(cmd: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - start)
    return best


def count_py(path: Path) -> int:
    return sum(1 for _ in path.rglob("*.py"))


def dense_tree(copies: int, into: Path) -> Path:
    for i in range(copies):
        for src in (ROOT / "fixtures").rglob("*.py"):
            dst = into / f"copy{i}" / src.relative_to(ROOT / "fixtures")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return into


def find_transformers() -> Path | None:
    spec = importlib.util.find_spec("transformers")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, help="a large tree (default: installed transformers)")
    parser.add_argument("--copies", type=int, default=20, help="copies of the fixtures (dense)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bnblint = [sys.executable, "-m", "bnblint", "check", "--exit-zero", "--no-color"]
    ruff = shutil.which("ruff")
    if ruff is None:
        sys.exit("ruff is not installed (pip install ruff)")
    ruff_cmd = [ruff, "check", "--select", "E9", "--exit-zero", "--no-cache", "--quiet"]

    trees: list[tuple[str, Path]] = []
    large = args.large or find_transformers()
    if large is None:
        print("no large tree: pass --large or install transformers (no torch needed)")
    else:
        trees.append(("large", large))
    tmp = Path(tempfile.mkdtemp(prefix="bnblint-bench-"))
    try:
        trees.append(("dense", dense_tree(args.copies, tmp)))
        print(f"{'tree':<6} {'files':>6} {'bnblint':>9} {'ruff E9':>9} {'ratio':>7}  path")
        for name, path in trees:
            ours = best_time([*bnblint, str(path)], args.runs)
            theirs = best_time([*ruff_cmd, str(path)], args.runs)
            print(
                f"{name:<6} {count_py(path):>6} {ours:>8.3f}s {theirs:>8.3f}s "
                f"{ours / theirs:>6.2f}x  {path}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
