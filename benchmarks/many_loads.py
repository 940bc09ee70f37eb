"""Many loads in one file: the cost of fix edits (issue 14 item 12).

    python benchmarks/many_loads.py [--loads 200 500] [--write PATH]

Writes a module of N 4-bit loads, each with three findings and their fixes (a legacy
``load_in_4bit`` keyword, no ``device_map``, an int ``llm_int8_threshold``), and times
``bnblint check --output-format json`` (which computes every fix's edits) and ``--diff`` on it,
each in a fresh process. ``--write PATH`` only writes the file (of the first N). Not a test:
timings depend on the machine, so nothing here asserts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEADER = "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n\n\n"
LOAD = """\
def load_{i}():
    config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold={i})
    m = AutoModelForCausalLM.from_pretrained("model-{i}", quantization_config=config)
    legacy = AutoModelForCausalLM.from_pretrained(
        "legacy-{i}",
        load_in_4bit=True,  # noted
    )
    return m, legacy


"""


def many_loads(n: int) -> str:
    """A module of ``n`` functions, each with two loads (one legacy) and an 8-bit config."""
    return HEADER + "".join(LOAD.format(i=i) for i in range(n))


def _time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bnblint", "check", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, nargs="+", default=[200, 500])
    parser.add_argument("--write", type=Path, help="only write the generated file here")
    args = parser.parse_args()
    if args.write is not None:
        args.write.write_text(many_loads(args.loads[0]), encoding="utf-8")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.loads:
            path = Path(tmp) / f"loads_{n}.py"
            path.write_text(many_loads(n), encoding="utf-8")
            json_s = _time(["--output-format", "json", str(path)])
            text_s = _time([str(path)])
            diff_s = _time(["--diff", str(path)])
            print(
                f"{n} functions ({2 * n} loads): json {json_s:.2f} s, text {text_s:.2f} s, "
                f"--diff {diff_s:.2f} s"
            )


if __name__ == "__main__":
    main()
