"""Child processes that look at the environment; all torch/bitsandbytes code runs in them.

The doctor's own process never imports torch or bitsandbytes: a segfault, a hang in CUDA
initialisation or a missing package then costs one probe, not the report.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnblint.verify import procs

_HERE = Path(__file__).resolve().parent

# The facts script prints these stages in this order; the first missing one is where it died.
STAGES = ("python", "packages", "env", "bitsandbytes", "nvidia_smi", "torch", "devices")


@dataclass
class Proc:
    """What a finished (or killed) child process left behind."""

    args: list[str]
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    error: str | None = None  # could not start it at all

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out and self.error is None

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def failure(self, timeout: float) -> str:
        """One line saying why the process did not finish cleanly."""
        if self.error is not None:
            return self.error
        if self.timed_out:
            return f"did not finish within {timeout:g} s (killed)"
        last = last_line(self.stderr) or last_line(self.stdout) or "no output"
        if self.rc is not None and self.rc < 0:
            return f"killed by signal {-self.rc}: {last}"
        return f"exit status {self.rc}: {last}"


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Running:
    """A started child process; ``finish`` waits for it, killing its process group at the
    deadline (and any grandchild still running once it has exited)."""

    def __init__(self, args: list[str], timeout: float) -> None:
        self.args = args
        self.timeout = timeout
        self.child: procs.Child | None = None
        self.error: str | None = None
        try:
            self.child = procs.Child(args, timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except OSError as exc:
            self.error = f"cannot run {args[0]}: {exc}"

    def finish(self) -> Proc:
        result = Proc(self.args, error=self.error)
        if self.child is None:
            return result
        done = self.child.finish()
        result.rc, result.stdout, result.stderr = done.returncode, done.stdout, done.stderr
        result.timed_out = done.timed_out
        return result

    def kill(self) -> None:
        """Stop it now (nothing once finished): an interrupt must not orphan a probe."""
        if self.child is not None:
            self.child.kill()


def _script(name: str, *args: str) -> list[str]:
    # Passed with -c rather than as a path so the package folder (holding logic.py, probe.py)
    # is not put first on the child's sys.path, where it could shadow real modules.
    return ["-c", (_HERE / name).read_text(encoding="utf-8"), *args]


def start_facts(python: str, timeout: float) -> Running:
    return Running([python, *_script("_facts.py")], timeout)


def start_bnb_diagnostics(python: str, timeout: float) -> Running:
    return Running([python, "-m", "bitsandbytes"], timeout)


def start_smoke(python: str, devices: list[str], dtypes: list[str], timeout: float) -> Running:
    return Running([python, *_script("_smoke.py", ",".join(devices), ",".join(dtypes))], timeout)


@dataclass
class Facts:
    """The facts script's stages, and how its process ended."""

    stages: dict[str, Any] = field(default_factory=dict)
    proc: Proc | None = None
    timeout: float = 0.0

    @classmethod
    def collect(cls, running: Running) -> Facts:
        proc = running.finish()
        stages = {d["stage"]: d.get("value") for d in proc.json_lines() if "stage" in d}
        return cls(stages, proc, running.timeout)

    def get(self, stage: str, default: Any = None) -> Any:
        return self.stages.get(stage, default)

    def died(self) -> str | None:
        """``"<stage>: <why>"`` if the process ended badly or early, else None."""
        if self.proc is None:
            return None
        missing = next((s for s in STAGES if s not in self.stages), None)
        if self.proc.ok and missing is None:
            return None
        # Exit status 0 with stages missing: not the facts script (a wrapper that exited early).
        why = self.proc.failure(self.timeout)
        return f"probe died while reading {missing or 'end'}: {why}"


def cuobjdump_elf(path: str, timeout: float = 60) -> str | None:
    """``cuobjdump --list-elf`` of a library, where the CUDA toolkit is on PATH."""
    exe = shutil.which("cuobjdump")
    if exe is None:
        return None
    try:
        out = procs.run([exe, "--list-elf", path], timeout)
    except OSError:
        return None
    return out.stdout if out.returncode == 0 and not out.timed_out else None
