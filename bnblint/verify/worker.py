"""The child process that loads one variant of a call: ``python -m bnblint.verify.worker``.

Reads one JSON spec on stdin and writes one JSON result line on stdout. A process per load, so
that a CUDA error, an OOM or a native crash in one variant cannot poison the other, and each
starts with clean memory statistics. Library output printed to stdout is sent to stderr so it
cannot corrupt the result.

Modes:
- ``prepare``: import torch, transformers, bitsandbytes and accelerate, report their versions and
  whether CUDA is available, and build (or reuse) the stand-ins asked for.
- ``load``: build the keyword arguments (a ``BitsAndBytesConfig`` marker becomes a real config
  here, so its construction errors are part of the result), load the model, inspect it, and time
  a short forward pass.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import statistics
import sys
import time
import traceback
import warnings
from contextlib import contextmanager
from typing import Any

from bnblint.verify import MARK, standin

# At least 3 timed passes; fast ones (tiny models, CPU noise) repeat until this much time
# has passed, so a single scheduler hiccup cannot decide the median.
FORWARD_RUNS = 3
FORWARD_BUDGET_S = 0.3
FORWARD_MAX_RUNS = 30
LOGGERS = ("transformers", "bitsandbytes", "accelerate")
MAX_RECORDS = 50  # distinct warnings/log lines kept per stage
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# "ValueError: quant_type must be ..." inside a logged report or traceback.
EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w+(?:Error|Exception)): (\S.*)$", re.MULTILINE)


class Failure(Exception):
    """A stage failed: carries the stage name and the original exception."""

    def __init__(self, stage: str, exc: BaseException) -> None:
        super().__init__(stage)
        self.stage = stage
        self.exc = exc


class Capture(logging.Handler):
    """Warnings and library log lines, tagged with the stage they happened in."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.stage = "setup"
        self.records: dict[tuple[str, str, str, str, str], int] = {}
        self.pending: list[warnings.WarningMessage] = []  # catch_warnings' list
        # Exception lines inside WARNING-or-worse messages: transformers logs the real cause of
        # some load errors (a weight conversion's ValueError) and raises a generic one.
        self.logged_errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break the load
            message = str(record.msg)
        message = ANSI.sub("", message)
        if record.levelno >= logging.WARNING:
            for kind, text in EXCEPTION_LINE.findall(message):
                line = f"{kind}: {text.strip()}"
                if line not in self.logged_errors:
                    self.logged_errors.append(line)
        self._add("log", record.levelname, record.name, message)

    def _add(self, kind: str, level: str, source: str, message: str) -> None:
        lines = ANSI.sub("", message).strip().splitlines()
        key = (self.stage, kind, level, source, lines[0].strip() if lines else "")
        if key in self.records or sum(k[0] == self.stage for k in self.records) < MAX_RECORDS:
            self.records[key] = self.records.get(key, 0) + 1

    @contextmanager
    def stage_of(self, stage: str):  # type: ignore[no-untyped-def]
        self.flush_warnings()
        self.stage = stage
        try:
            yield
        finally:
            self.flush_warnings()

    def flush_warnings(self) -> None:
        for w in self.pending:
            self._add("warning", "WARNING", w.category.__name__, str(w.message))
        self.pending.clear()

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"stage": s, "kind": k, "level": lv, "source": src, "message": m, "count": n}
            for (s, k, lv, src, m), n in self.records.items()
        ]


def main() -> None:
    # Nothing may be downloaded: the model is local, cached, or a stand-in.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = json.loads(sys.stdin.read())
    result_fd = os.dup(1)
    os.dup2(2, 1)  # anything a library prints goes to stderr; fd ``result_fd`` is ours
    try:
        result = prepare(spec) if spec["mode"] == "prepare" else load(spec)
    except BaseException as exc:  # report, never hang or die silently
        result = {"ok": False, "loaded": False, "error": _error("worker", exc)}
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result) + "\n")


def _first_line(exc: BaseException) -> str:
    lines = ANSI.sub("", str(exc)).strip().splitlines()
    return lines[0].strip() if lines else ""


def _error(stage: str, exc: BaseException, logged: list[str] | None = None) -> dict[str, Any]:
    """An exception as type and first line, with its cause when one is known."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not isinstance(cause, Failure):
        why: str | None = f"{type(cause).__name__}: {_first_line(cause)}"
    else:
        why = logged[0] if logged else None
    return {
        "stage": stage,
        "type": type(exc).__name__,
        "message": _first_line(exc),
        "cause": why,
        "traceback": "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4)
        )[-2000:],
    }


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    versions: dict[str, str] = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "bitsandbytes", "accelerate"):
        try:
            module = __import__(name)
        except BaseException as exc:  # a broken install can raise anything, even SystemExit
            return {"ok": False, "missing": name, "error": _error("import", exc)}
        versions[name] = getattr(module, "__version__", "?")
    import torch

    cuda = torch.cuda.is_available()
    result: dict[str, Any] = {
        "ok": True,
        "versions": versions,
        "cuda": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "stand_ins": {},
    }
    for item in spec.get("stand_ins", []):
        try:
            result["stand_ins"][item["key"]] = standin.ensure(item, spec["root"])
        except Exception as exc:
            result["stand_ins"][item["key"]] = {"error": _error("stand-in", exc)}
    return result


def _decode(value: Any, torch: Any, transformers: Any) -> Any:
    if isinstance(value, dict):
        if value.get(MARK) == "dtype":
            return getattr(torch, value["name"])
        if value.get(MARK) == "BitsAndBytesConfig":
            options = _decode(value["options"], torch, transformers)
            return transformers.BitsAndBytesConfig(**options)
        return {k: _decode(v, torch, transformers) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, torch, transformers) for v in value]
    return value


def load(spec: dict[str, Any]) -> dict[str, Any]:
    import bitsandbytes as bnb
    import torch
    import transformers

    transformers.utils.logging.disable_default_handler()  # our handler records instead
    transformers.utils.logging.disable_progress_bar()
    capture = Capture()
    for name in LOGGERS:
        logging.getLogger(name).addHandler(capture)
    logging.getLogger("transformers").setLevel(logging.INFO)
    cuda = spec["device"] == "cuda"
    result: dict[str, Any] = {"loaded": False}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        capture.pending = caught
        try:
            with capture.stage_of("config"):
                try:
                    kwargs = _decode(spec["kwargs"], torch, transformers)
                except Exception as exc:
                    raise Failure("config", exc) from exc
                _no_model_code(kwargs, bool(spec.get("trust_remote_code")))
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with capture.stage_of("load"):
                start = time.perf_counter()
                try:
                    model = _load_model(spec, kwargs, transformers)
                except Exception as exc:
                    raise Failure("load", exc) from exc
                result["load_seconds"] = round(time.perf_counter() - start, 3)
            result["loaded"] = True
            result.update(examine(model, bnb, torch, cuda))
            with capture.stage_of("forward"):
                try:
                    result["forward"] = forward(model, spec, torch)
                except Exception as exc:
                    result["forward"] = {"error": _error("forward", exc, capture.logged_errors)}
            if cuda:
                result["peak_bytes"] = torch.cuda.max_memory_allocated()
        except Failure as failure:
            result["error"] = _error(failure.stage, failure.exc, capture.logged_errors)
        capture.flush_warnings()
    result["records"] = capture.as_json()
    return result


def _no_model_code(kwargs: dict[str, Any], trusted: bool) -> None:
    """Make the load refuse code shipped with the model unless the user said
    --trust-remote-code: the bnblint process skips such calls, and this is the second lock.

    An explicit False rather than none at all: with None, transformers asks on stdin (and waits
    up to 15 s) when only the directory's ``auto_map`` code can load it."""
    kwargs.setdefault("trust_remote_code", False)
    if trusted:
        return
    # A pipeline's model_kwargs reach the model's loader too.
    for holder in (kwargs, kwargs.get("model_kwargs")):
        if not isinstance(holder, dict):
            continue
        if holder.get("trust_remote_code") not in (False, None):
            holder["trust_remote_code"] = False
        if holder.get("weights_only", True) is not True:
            holder["weights_only"] = True  # torch.load then refuses pickled code


def _load_model(spec: dict[str, Any], kwargs: dict[str, Any], transformers: Any) -> Any:
    if spec["api"] == "pipeline":
        args = [spec["task"]] if spec.get("task") else []
        pipe = transformers.pipeline(*args, model=spec["model"], **kwargs)
        return pipe.model
    cls = getattr(transformers, spec["class"], None)
    if cls is None:
        raise AttributeError(f"transformers has no `{spec['class']}`")
    return cls.from_pretrained(spec["model"], **kwargs)


def examine(model: Any, bnb: Any, torch: Any, cuda: bool) -> dict[str, Any]:
    """What the load produced: quantized layers, compute dtype, placement, memory."""
    counts: dict[str, int] = {}
    compute: set[str] = set()
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            name = "Linear4bit"
            compute.add(str(module.compute_dtype).replace("torch.", ""))
        elif isinstance(module, bnb.nn.Linear8bitLt):
            name = "Linear8bitLt"
        elif isinstance(module, torch.nn.Linear):
            name = "Linear"  # left unquantized (lm_head, skipped modules)
        else:
            continue
        counts[name] = counts.get(name, 0) + 1
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        devices = {_device_name(d, cuda) for d in device_map.values()}
    else:
        devices = {str(t.device) for t in (*model.parameters(), *model.buffers())}
    return {
        "class": type(model).__name__,
        "layers": counts,
        "compute_dtypes": sorted(compute),
        "model_dtype": str(getattr(model, "dtype", "?")).replace("torch.", ""),
        "hf_device_map": {k: _device_name(v, cuda) for k, v in device_map.items()}
        if device_map
        else None,
        "devices": sorted(devices),
        "footprint_bytes": int(model.get_memory_footprint()),
    }


def _device_name(device: Any, cuda: bool) -> str:
    if isinstance(device, int) and not isinstance(device, bool):
        return f"cuda:{device}" if cuda else str(device)
    return str(device)


def forward(model: Any, spec: dict[str, Any], torch: Any) -> dict[str, Any]:
    """Median time of a forward pass on a fixed random batch, after one warm-up pass.

    ``runs`` is kept short in the result: the first few timings, for a glance at the spread."""
    batch, length = spec["batch"]
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab = getattr(text, "vocab_size", None) or 1000
    limit = getattr(text, "max_position_embeddings", None)
    if isinstance(limit, int) and limit > 0:
        length = min(length, limit)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, length), generator=generator)
    embeddings = model.get_input_embeddings()
    device = embeddings.weight.device if embeddings is not None else torch.device("cpu")
    if device.type == "meta":  # offloaded: accelerate's hooks move the inputs
        device = torch.device("cpu")
    inputs = {"input_ids": ids.to(device)}
    # Encoder-decoder models need decoder inputs; T5EncoderModel shares their config but not that.
    if "decoder_input_ids" in inspect.signature(model.forward).parameters:
        inputs["decoder_input_ids"] = inputs["input_ids"]
    cuda = device.type == "cuda" or spec["device"] == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    model.eval()
    times: list[float] = []
    with torch.inference_mode():
        model(**inputs)  # warm-up: kernels, and bitsandbytes' one-off CPU weight repacking
        sync()
        while len(times) < FORWARD_RUNS or (
            sum(times) < FORWARD_BUDGET_S and len(times) < FORWARD_MAX_RUNS
        ):
            start = time.perf_counter()
            model(**inputs)
            sync()
            times.append(time.perf_counter() - start)
    return {
        "seconds": round(statistics.median(times), 4),
        "runs": [round(t, 4) for t in times[:10]],
        "count": len(times),
        "batch": [batch, length],
    }


if __name__ == "__main__":
    main()
