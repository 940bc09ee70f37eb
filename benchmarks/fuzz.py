"""The fuzz harness of tests/test_fuzz.py, longer: `python benchmarks/fuzz.py --examples 2000`.

Generates the same programs and packages, checks them through the CLI in batches, and prints
counts of files, findings, fixes, violations and the time taken. By default the inputs that hit
bugs already recorded as xfail tests are made too (`--no-known-bugs` leaves them out, as the
test suite does). Exit 1 when any property was violated; the first violations are printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_fuzz import Result, fuzz  # noqa: E402  (the generators live with the tests)


def kind(violation: str) -> str:
    """A violation's class, without the file name and the bytes: for the summary."""
    text = re.sub(r"^[\w./-]+\.py: ", "", violation.splitlines()[0])
    text = re.sub(r"^(json run|fix run|second fix run): [\w./-]+\.py: ", r"\1: ", text)
    return re.sub(r"lines \d+-\d+ .*", "lines changed outside the findings' spans", text)[:100]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="generated single files")
    parser.add_argument("--projects", type=int, default=None, help="packages (default: 1/10)")
    parser.add_argument("--batch", type=int, default=50, help="files per CLI run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-known-bugs", action="store_true")
    parser.add_argument("--show", type=int, default=5, help="violations to print in full")
    parser.add_argument("--dump", type=Path, help="write every violation to this JSON file")
    args = parser.parse_args()
    projects = args.examples // 10 if args.projects is None else args.projects

    start = time.perf_counter()
    result: Result = fuzz(
        args.examples, projects, batch=args.batch, seed=args.seed,
        known_bugs=not args.no_known_bugs,
    )
    elapsed = time.perf_counter() - start

    real = result.violations
    if args.dump:
        args.dump.write_text(json.dumps(real, indent=1))
    print(f"files:        {result.files} ({args.examples} modules, {projects} packages)")
    print(f"findings:     {result.findings}  {dict(sorted(result.codes.items()))}")
    print(f"fixed files:  {result.fixed_files}")
    print(f"left after fix: {result.left} findings (no fix, or unsafe to apply)")
    print(f"violations:   {len(real)}")
    for name, count in Counter(kind(v) for v in real).most_common():
        print(f"  {count:5d}  {name}")
    print(f"time:         {elapsed:.1f} s")
    for violation in real[: args.show]:
        print("\n" + violation[:2000])
    return 1 if real else 0


if __name__ == "__main__":
    sys.exit(main())
