"""``bnblint doctor``: can this environment run bitsandbytes 4-bit loads, and if not, why.

``logic`` holds the pure decisions (unit-tested without torch), ``probe`` the child processes
that look at torch, the GPUs and bitsandbytes, ``checks`` what the report says about them,
``render`` how it is printed. Importing this package imports none of torch, transformers,
bitsandbytes or libcst.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bnblint.doctor import probe
from bnblint.doctor.checks import Context, run_checks, smoke_plan
from bnblint.doctor.logic import Check, verdict

__all__ = ["Check", "diagnose", "verdict"]

DEFAULT_TIMEOUT = 180.0  # first imports of torch + bitsandbytes took 19 s on an H100 host


def diagnose(
    python: str | None = None, config: Path | None = None, timeout: float = DEFAULT_TIMEOUT
) -> list[Check]:
    """Run every check against ``python``'s environment (default: this interpreter)."""
    python = python or sys.executable
    ctx = Context(facts=probe.Facts(), timeout=timeout)
    _read_config(ctx, config)
    ctx.extra["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    ctx.facts = probe.Facts.collect(probe.start_facts(python, timeout))
    try:
        _run_probes(ctx, python, timeout)
    except Exception as exc:  # odd facts must not stop the report: checks say what is missing
        ctx.extra["probe_error"] = f"{type(exc).__name__}: {exc}"
    return run_checks(ctx)


def _run_probes(ctx: Context, python: str, timeout: float) -> None:
    # python -m bitsandbytes and the smoke test are independent: run them side by side.
    diag = probe.start_bnb_diagnostics(python, timeout) if _bnb_usable(ctx) else None
    plan = smoke_plan(ctx)
    smoke = probe.start_smoke(python, *plan, timeout) if plan else None
    try:
        choice = ctx.choice()
        if choice is not None and choice.backend == "cuda" and choice.exists:
            folder = (ctx.facts.get("bitsandbytes") or {}).get("dir")
            if isinstance(folder, str):
                ctx.extra["cuobjdump"] = probe.cuobjdump_elf(os.path.join(folder, choice.name))
    finally:
        try:
            ctx.bnb_diag = diag.finish() if diag else None
            ctx.smoke = smoke.finish() if smoke else None
        finally:
            for running in (diag, smoke):  # an interrupt in one wait must not orphan the other
                if running is not None:
                    running.kill()
        ctx.smoke_plan = plan


def _bnb_usable(ctx: Context) -> bool:
    return ctx.torch is not None and bool(ctx.versions.get("bitsandbytes"))


def _read_config(ctx: Context, config: Path | None) -> None:
    from bnblint.settings import ConfigError, find_config, load_settings

    try:
        path = config or find_config(Path.cwd())
        if path is not None:
            ctx.compute_dtype = load_settings(path).compute_dtype
            ctx.config_source = str(path)
    except ConfigError as exc:
        ctx.extra["config_error"] = str(exc)  # the bf16 check then uses the default
