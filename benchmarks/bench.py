"""Time bnblint against ``ruff check --select E9`` and the parse floors, on two trees.

    python benchmarks/bench.py [--large PATH] [--dense PATH] [--copies N] [--runs N]

- large: an installed ``transformers`` package by default (thousands of files, almost none of which
  mention bitsandbytes: measures the byte prefilter and discovery);
- dense: every fixture, copied N times, or ``--dense PATH`` (e.g. a tree of real QLoRA scripts):
  every file is parsed and analysed, which measures the analysis.

Columns: ``check`` (the default ``bnblint check``), ``ruff E9``, ``ast`` (the stdlib parse floor:
one process reading and ``ast``-parsing every file), ``libcst`` (the LibCST parse floor) and, on
the dense tree, ``--fix`` (``--fix --unsafe-fixes`` on a fresh copy). The budgets of the
architecture issue: ``check`` within 3x ``ast`` on the dense tree, ``--fix`` within 1.5x the
LibCST parse of the files that have findings (``libcst*``: those files only).

Every command runs as a subprocess, as a user runs it; the best of ``--runs`` wall times is
kept. Not a test: timings depend on the machine, so nothing here asserts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
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


# The parse floors: what reading and parsing the same files costs in one process.
FLOOR = """
import sys, pathlib
kind = sys.argv[1]
if kind == "libcst":
    import libcst
root = pathlib.Path(sys.argv[2])
paths = root.rglob("*.py") if root.is_dir() else map(pathlib.Path, root.read_text().split())
for path in paths:
    text = path.read_bytes().decode("utf-8", "replace")
    try:  # a file the parser rejects costs what it cost; the floor counts every file
        if kind == "ast":
            compile(text, str(path), "exec", 0x400, dont_inherit=True)  # PyCF_ONLY_AST
        else:
            libcst.parse_module(text)
    except Exception:
        pass
"""


def fix_time(bnblint: list[str], tree: Path, runs: int) -> float:
    """``--fix --unsafe-fixes`` on a fresh copy each run (the first run fixes the tree)."""
    best = float("inf")
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bnblint-fix-") as tmp:
            copy = Path(tmp) / "tree"
            shutil.copytree(tree, copy)
            cmd = [*bnblint, "--fix", "--unsafe-fixes", str(copy)]
            start = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            best = min(best, time.perf_counter() - start)
    return best


def with_findings(bnblint: list[str], tree: Path, into: Path) -> Path:
    """A file listing the files of ``tree`` that have findings (for their LibCST floor)."""
    out = subprocess.run(
        [*bnblint, "--output-format", "json", str(tree)], capture_output=True, text=True
    ).stdout
    names = sorted({str(Path(f["filename"]).resolve()) for f in json.loads(out or "[]")})
    into.write_text("\n".join(n for n in names if n.endswith(".py")))
    return into


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
    parser.add_argument("--dense", type=Path, help="a dense tree (default: fixtures copied)")
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
        trees.append(("dense", args.dense or dense_tree(args.copies, tmp)))
        print(
            f"{'tree':<6} {'files':>6} {'check':>8} {'ruff E9':>8} {'ast':>8} {'libcst':>8} "
            f"{'--fix':>8} {'libcst*':>8}  check/ruff check/ast fix/libcst*"
        )
        for name, path in trees:
            ours = best_time([*bnblint, str(path)], args.runs)
            theirs = best_time([*ruff_cmd, str(path)], args.runs)
            floor = best_time([sys.executable, "-c", FLOOR, "ast", str(path)], args.runs)
            cst = best_time([sys.executable, "-c", FLOOR, "libcst", str(path)], args.runs)
            fixed, ratio = f"{'-':>8} {'-':>8}", f"{'-':>16}"
            if name == "dense":
                fix = fix_time(bnblint, path, args.runs)
                listed = with_findings(bnblint, path, tmp / "with_findings.txt")
                only = best_time([sys.executable, "-c", FLOOR, "libcst", str(listed)], args.runs)
                fixed, ratio = f"{fix:>7.3f}s {only:>7.3f}s", f"{fix / only:>15.2f}x"
            print(
                f"{name:<6} {count_py(path):>6} {ours:>7.3f}s {theirs:>7.3f}s {floor:>7.3f}s "
                f"{cst:>7.3f}s {fixed}  {ours / theirs:>9.2f}x {ours / floor:>8.2f}x{ratio}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
