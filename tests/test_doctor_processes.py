"""``bnblint doctor --timeout`` holds when a probe leaves a process behind, and none survives.

The ``--python`` given is a shell script that forks a long sleeper which inherits its stdout
and stderr, then exits or hangs itself: the shapes of a wrapper script or a stuck interpreter.
Through the real CLI in a subprocess; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")

TIMEOUT = 5
# Far below the sleepers' 300 s: a doctor waiting for their pipes cannot return in time.
BOUND_S = 60


def fake_python(tmp_path: Path, then: str) -> tuple[Path, Path]:
    pids = tmp_path / "pids"
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! >> '{pids}'\necho $$ >> '{pids}'\n{then}\n")
    script.chmod(0o755)
    return script, pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not reaped yet (PID 1 of a container may never reap it)
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize(
    ("then", "why"),
    [
        ("exit 0", "exit status 0: no output"),
        ("sleep 300", f"did not finish within {TIMEOUT} s (killed)"),
    ],
    ids=["exits", "hangs"],
)
def test_timeout_holds_and_no_probe_process_survives(tmp_path: Path, then: str, why: str) -> None:
    python, pids = fake_python(tmp_path, then)
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bnblint", "doctor", "--json"]
            + ["--python", str(python), "--timeout", str(TIMEOUT)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=BOUND_S,
        )
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stderr
        by_name = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        assert by_name["python"]["status"] == "fail"
        assert by_name["python"]["reason"] == (
            f"cannot run the interpreter: probe died while reading python: {why}"
        )
        assert elapsed < BOUND_S
        recorded = [int(n) for n in pids.read_text().split()]
        assert len(recorded) == 2
        left = [pid for pid in recorded if alive(pid)]
        assert not left, f"still running after doctor returned: {left}"
    finally:
        for pid in [int(n) for n in pids.read_text().split()] if pids.exists() else []:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
