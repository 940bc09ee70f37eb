"""The ``bnblint doctor`` command's body (the click wiring is in ``bnblint.cli``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bnblint.doctor import diagnose, render
from bnblint.doctor.logic import FAIL, verdict
from bnblint.verify.procs import terminations_exit


def run_doctor(
    as_json: bool, python: str | None, config: Path | None, timeout: float, color: bool | None
) -> int:
    """Print the report; 0 when no check fails, 1 otherwise."""
    with terminations_exit():  # a killed doctor kills its probes too
        checks = diagnose(python, config, timeout)
    out = sys.stdout
    if as_json:
        out.write(render.to_json(checks) + "\n")
    else:
        tty = out.isatty()
        if color is None:
            color = tty and "NO_COLOR" not in os.environ
        # rich only on a terminal: piped output stays one greppable line per check.
        if not (tty and render.to_rich(checks, out, color)):
            render.to_text(checks, out, color)
    return 1 if verdict(checks) == FAIL else 0
