"""The ``bnblint verify`` command's body (the click wiring is in ``bnblint.cli``).

This process never imports torch, transformers or bitsandbytes: one worker process checks the
environment and builds the stand-ins, then one worker per variant loads it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

from bnblint.lines import LineIndex
from bnblint.verify import procs
from bnblint.verify import report as render
from bnblint.verify.standin import ModelChoice, choose, in_local_cache

if TYPE_CHECKING:  # sites runs the analysis (and LibCST, for the fixes): only when needed
    from bnblint.settings import Settings
    from bnblint.verify.sites import Site

DEFAULT_TIMEOUT = 300.0
# The README's measured prefill on CUDA; small enough to stay quick on a CPU.
BATCH = {"cuda": (8, 512), "cpu": (2, 64)}
INSTALL = (
    "pip install 'bnblint[verify]' (install torch for your platform first: "
    "https://pytorch.org/get-started/locally/)"
)
# Stand-ins are kept here across runs when set (the tests build them once per session).
CACHE_ENV = "BNBLINT_VERIFY_CACHE"
# Timings of a tiny model, or on the CPU, do not transfer to the real model on a GPU (on an H100
# the tiny Llama's forward was faster with float32 compute than with float16: casts and kernel
# launches dominate at that size); what the load produced does.
TIMING_NOTE = (
    "timings {where} say little about the real model's speed; "
    "the load, the layers and the compute dtype do carry over"
)

# ``-c`` without its sys.path entry, rather than ``-m``: both put the current directory first
# on sys.path, where a ``json.py`` or ``torch.py`` there (verify run inside a model directory)
# would be imported instead of the real one.
WORKER_CODE = (
    "import sys; sys.path[:] = [p for p in sys.path if p]; "
    "from bnblint.verify.worker import main; main()"
)


class UsageError(Exception):
    """A mistake in the command line or the environment: exit 2."""


def run_verify(
    target: str,
    model: str | None,
    device: str,
    as_json: bool,
    timeout: float,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    trust_remote_code: bool = False,
) -> int:
    """Verify the sites of ``target`` (``PATH`` or ``PATH:LINE``); the exit code.

    ``trust_remote_code``: pass a call's ``trust_remote_code=True`` through (the model
    directory's own code then runs); otherwise such a site is skipped."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        with procs.terminations_exit():  # a killed verify kills its worker too
            report = _verify(target, model, device, timeout, _progress(err), trust_remote_code)
    except UsageError as exc:
        err.write(f"bnblint: error: {exc}\n")
        return 2
    if as_json:
        out.write(render.to_json(report) + "\n")
    else:
        tty = out.isatty()
        color = tty and "NO_COLOR" not in os.environ
        # rich only on a terminal: piped output stays plain lines.
        if not (tty and render.to_rich(report, out, color)):
            render.to_text(report, out, color)
    return int(report["exit_code"])


def _progress(err: TextIO) -> Callable[[str], None]:
    tty = err.isatty()

    def say(message: str) -> None:
        if tty:  # progress is for people watching; logs and pipes get only the report
            err.write(f"bnblint verify: {message}\n")
            err.flush()

    return say


def parse_target(target: str) -> tuple[Path, int | None]:
    """``PATH`` or ``PATH:LINE`` (a path that exists as given wins, colons and all)."""
    if os.path.exists(target):
        return Path(target), None
    match = re.fullmatch(r"(.+):([^:/\\]*)", target)
    if match and os.path.exists(match.group(1)):
        if not match.group(2).isdigit():
            raise UsageError(f"bad LINE `{match.group(2)}` in `{target}`: expected PATH:LINE")
        return Path(match.group(1)), int(match.group(2))
    raise UsageError(f"no such file: {target}")


def _verify(
    target: str,
    model: str | None,
    device: str,
    timeout: float,
    say: Callable[[str], None],
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    from bnblint.documents import document_type
    from bnblint.source import SourceError, read_source
    from bnblint.verify.sites import SiteError, find_sites

    path, line = parse_target(target)
    if path.is_dir():
        raise UsageError(f"{path} is a directory: verify takes one Python file")
    if document_type(str(path)) is not None:
        raise UsageError(f"{path}: verify takes a Python file, not a notebook or document")
    try:
        source = read_source(path)
    except SourceError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    try:
        sites = find_sites(source.text, str(path), _settings(path))
    except SiteError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if line is not None:
        count = LineIndex(source.text).row_count
        if not 1 <= line <= max(count, 1):
            raise UsageError(f"line {line} is outside {path} ({count} lines)")
        chosen = [s for s in sites if s.line == line]
        if not chosen:
            where = ", ".join(str(s.line) for s in sites)
            hint = f" (they start at line {where})" if sites else " (it has none)"
            raise UsageError(f"no bitsandbytes load starts at {path}:{line}{hint}")
        sites = chosen
    if model is not None and not os.path.isdir(model) and not in_local_cache(model):
        raise UsageError(
            f"--model {model} is neither a directory nor fully in the local Hugging Face cache "
            "(nothing is downloaded)"
        )
    report: dict[str, Any] = {
        "file": str(path),
        "device": None,
        "environment": None,
        "sites": [],
        "exit_code": 0,
    }
    work = []
    for site in sites:
        entry = _entry(site)
        report["sites"].append(entry)
        if entry["reason"]:
            continue
        risky = _runs_model_code(site)
        if risky is not None:
            argument, why = risky
            if not trust_remote_code:
                entry["reason"] = (
                    f"the call passes `{argument}`, which would {why}; "
                    "rerun with --trust-remote-code to allow it"
                )
                continue
            entry["notes"].append(
                f"`{argument}` passed through (--trust-remote-code): it may {why}"
            )
        revision = (site.original.kwargs or {}).get("revision")
        choice = choose(
            site.api,
            site.class_name,
            site.task,
            site.model_id,
            revision if isinstance(revision, str) else None,
            model,
        )
        if isinstance(choice, str):
            entry["reason"] = choice
            continue
        work.append((site, entry, choice))
    if work:
        _run(work, report, device, timeout, say, trust_remote_code)
    for entry in report["sites"]:
        entry["status"], entry["verdict"] = render.judge(entry)
    failing = any(e["status"] in render.FAILING for e in report["sites"])
    report["exit_code"] = 1 if failing else 0
    return report


def _settings(path: Path) -> Settings:
    from bnblint.settings import ConfigError, settings_for_path

    try:
        return settings_for_path(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _runs_model_code(site: Site) -> tuple[str, str] | None:
    """The argument (as written) by which either version of the call would run code shipped
    with the model, and what it would do."""
    from bnblint.verify.sites import model_code_argument

    for variant in (site.original, site.fixed):
        found = model_code_argument(variant.kwargs or {})
        if found is not None:
            return found
    return None


def _entry(site: Site) -> dict[str, Any]:
    from bnblint.verify.sites import changes, describe

    if site.api == "pipeline":
        shown = [describe(site.task)] if site.task else []
        shown += [f"model={describe(site.model_id)}"] if site.model_id else []
    else:
        shown = [describe(site.model_id) if site.model_id else "..."]
    original, fixed = site.original.kwargs, site.fixed.kwargs
    return {
        "line": site.line,
        "column": site.column,
        "call": f"{site.callee}({', '.join(shown)})",
        "api": site.api,
        "class": site.class_name,
        "task": site.task,
        "model_id": site.model_id,
        "status": None,
        "verdict": None,
        "reason": site.reason,
        "model": None,
        "notes": list(dict.fromkeys(site.original.notes + site.fixed.notes)),
        "original": {"arguments": _described(original), "result": None},
        "fixed": {
            "arguments": _described(fixed),
            "changes": [] if original is None or fixed is None else changes(original, fixed),
            "same_as_original": not site.changed,
            "result": None,
        },
        "speedup": None,
    }


def _described(kwargs: dict[str, Any] | None) -> dict[str, str] | None:
    from bnblint.verify.sites import describe

    return None if kwargs is None else {k: describe(v) for k, v in kwargs.items()}


def _run(
    work: list[tuple[Site, dict[str, Any], ModelChoice]],
    report: dict[str, Any],
    device: str,
    timeout: float,
    say: Callable[[str], None],
    trust_remote_code: bool = False,
) -> None:
    keep = os.environ.get(CACHE_ENV)
    root = keep or tempfile.mkdtemp(prefix="bnblint-verify-")
    try:
        plans = {c.plan.key: c.plan for _, _, c in work if c.plan is not None}
        if plans:
            names = ", ".join(sorted({f"tiny {p.family}" for p in plans.values()}))
            say(f"checking torch/transformers/bitsandbytes and preparing the stand-in ({names})")
        else:
            say("checking torch/transformers/bitsandbytes")
        prepared = worker(
            {
                "mode": "prepare",
                "root": root,
                "stand_ins": [
                    {"key": k, "family": p.family, "build_class": p.build_class}
                    for k, p in plans.items()
                ],
            },
            timeout,
            device,
        )
        if not prepared.get("ok"):
            error = prepared.get("error") or {}
            if prepared.get("missing"):
                raise UsageError(
                    f"`bnblint verify` needs {prepared['missing']}, which cannot be imported "
                    f"({error.get('type')}: {error.get('message')}): {INSTALL}"
                )
            raise UsageError(
                f"cannot check the environment: {error.get('type')}: {error.get('message')}"
            )
        cuda = bool(prepared["cuda"])
        if device == "cuda" and not cuda:
            raise UsageError("--device cuda, but torch sees no CUDA device (try --device auto)")
        device = "cuda" if device == "auto" and cuda else ("cpu" if device == "auto" else device)
        report["device"] = device
        report["environment"] = {k: prepared[k] for k in ("versions", "cuda", "gpu")}
        if device != "cuda":
            report["environment"]["gpu"] = None  # not what the loads ran on
        for n, (site, entry, choice) in enumerate(work, 1):
            _verify_site(
                site, entry, choice, prepared, device, timeout, say, n, len(work), trust_remote_code
            )
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _verify_site(
    site: Site,
    entry: dict[str, Any],
    choice: ModelChoice,
    prepared: dict[str, Any],
    device: str,
    timeout: float,
    say: Callable[[str], None],
    n: int,
    total: int,
    trust_remote_code: bool = False,
) -> None:
    from bnblint.verify.sites import for_cpu, without_hub_arguments
    from bnblint.verify.standin import describe as describe_standin

    model = {**choice.as_json(), "description": ""}
    entry["model"] = model
    path = choice.path
    if choice.plan is not None:
        built = prepared["stand_ins"].get(choice.plan.key, {})
        if "error" in built:
            e = built["error"]
            entry["status"] = "error"
            entry["reason"] = f"could not build the stand-in: {e['type']}: {e['message']}"
            model["description"] = f"stand-in, because {choice.reason}"
            return
        path = built["path"]
        model["path"] = path
        model["params"] = built["params"]
        model["description"] = f"stand-in: {describe_standin(built)}, because {choice.reason}"
        if choice.plan.note:
            model["description"] += f" ({choice.plan.note})"
    else:
        model["description"] = choice.reason
    # Sites reach here only with both argument sets known (``Site.reason`` is None).
    assert path is not None and site.original.kwargs is not None and site.fixed.kwargs is not None
    variants = [site.original.kwargs, site.fixed.kwargs]
    notes: list[str] = []
    if device == "cpu":
        for i, kwargs in enumerate(variants):
            variants[i], found = for_cpu(kwargs, site.api)
            notes.extend(found)
    if choice.source != "cache":
        for i, kwargs in enumerate(variants):
            variants[i], found = without_hub_arguments(kwargs, site.model_id, path)
            notes.extend(found)
    where = [
        w for w, on in (("of a tiny stand-in", choice.plan), ("on the CPU", device == "cpu")) if on
    ]
    if where:
        notes.append(TIMING_NOTE.format(where=" ".join(where)))
    entry["notes"] = list(dict.fromkeys(entry["notes"] + notes))
    spec = {
        "mode": "load",
        "api": site.api,
        "class": choice.load_class or site.class_name,
        "task": site.task,
        "model": path,
        "device": device,
        "batch": list(BATCH[device]),
        # Read by the worker, which forces trust_remote_code=False without it.
        "trust_remote_code": trust_remote_code,
    }
    label = f"{entry['call']} at line {site.line} ({n}/{total})"
    same = entry["fixed"]["same_as_original"]
    say(f"loading {label}" + ("" if same else " as written"))
    original = worker({**spec, "kwargs": variants[0]}, timeout, device)
    if same:
        fixed = original
    else:
        say(f"loading {label} as fixed")
        fixed = worker({**spec, "kwargs": variants[1]}, timeout, device)
    entry["original"]["result"] = original
    entry["fixed"]["result"] = fixed
    entry["speedup"] = render.speedup(original, fixed)


def worker(spec: dict[str, Any], timeout: float, device: str = "auto") -> dict[str, Any]:
    """Run ``python -m bnblint.verify.worker`` on ``spec``; its result, or what went wrong."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if device == "cpu":
        # Hidden, not just unused: transformers and accelerate put a quantized model on a
        # visible GPU by themselves (device_map="auto", or no device_map at all).
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The worker must import this very bnblint, whatever the current directory holds.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    try:
        proc = procs.run(
            [sys.executable, "-c", WORKER_CODE], timeout, input=json.dumps(spec), env=env
        )
    except OSError as exc:
        return _failed("WorkerCrash", f"cannot start the worker: {exc}")
    if proc.timed_out:
        return _failed("TimeoutError", f"gave up after {timeout:g} s (--timeout)")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if lines:
        try:
            result = json.loads(lines[-1])
            if isinstance(result, dict):
                return result
        except ValueError:
            pass
    tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:]
    why = f"the worker exited with {proc.returncode}" + (f": {tail[0]}" if tail else "")
    return _failed("WorkerCrash", why)


def _failed(kind: str, message: str) -> dict[str, Any]:
    error = {"stage": "worker", "type": kind, "message": message}
    return {"ok": False, "loaded": False, "error": error}
