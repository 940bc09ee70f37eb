"""Reproduce, on CPU, the transformers/bitsandbytes behaviours that bnblint's rules cite.

Not part of the test suite. It needs torch, transformers, bitsandbytes and accelerate, which are
imported only inside the worker subprocesses (never at module import time).

Each case runs in a fresh ``python cpu_facts.py --worker`` subprocess. The case's ``code`` string
is executed verbatim (``exec``) with ``tmp`` bound to a tiny random bf16 Llama checkpoint, so the
code recorded in the report is exactly the code that ran. ``setup`` (if any) runs first, outside
the capture window; ``code`` runs with transformers logging at INFO and every warning recorded.

Usage:
    python evidence/cpu_facts.py --out evidence/cpu_facts.json
    python evidence/cpu_facts.py --table evidence/cpu_facts.json   # markdown table from a report
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "cpu_facts.json"
WORKER_TIMEOUT_S = 600

# Loggers whose records are captured while a case's ``code`` runs.
CAPTURED_LOGGERS = ("transformers", "bitsandbytes", "accelerate")

# INFO records are kept only when they match this; WARNING and above are always kept.
RELEVANT_INFO = re.compile(
    r"device_map|dtype|Unused kwargs|quantiz|bitsandbytes|load_in_|deprecat|offload|4-bit|8-bit",
    re.IGNORECASE,
)
# INFO records that match RELEVANT_INFO only because they dump a whole config.
NOISY_INFO = re.compile(
    r"^(loading configuration file|Model config|Generate config|loading weights)"
)

# Warnings unrelated to quantization, emitted by torch during every load on this stack.
# They are counted (``ignored_warnings``) but not listed.
IGNORED_WARNINGS = (re.compile(r"`torch\.jit\.script_method` is deprecated"),)
# Log records unrelated to the case: bitsandbytes logs this on the first 4-bit use without the
# optional ``kernels`` package. It is reported once, under ``versions.import_log_lines``.
IGNORED_LOGS = (re.compile(r"Failed to load CPU gemm_4bit_forward from kernels-community"),)
# Lines such as "TypeError: ..." inside a multi-line message (pipeline wraps the real errors).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
INNER_ERROR = re.compile(r"^\s*([A-Za-z_.]+(?:Error|Exception|Warning)): (.+)$")

# A 4-layer map for the tiny Llama; GPU index 0 for the body, CPU for the head.
MIXED_MAP = (
    '{"model.embed_tokens": 0, "model.layers": 0, "model.norm": 0, '
    '"model.rotary_emb": 0, "lm_head": "cpu"}'
)
ALL_CPU_MAP = (
    '{"model.embed_tokens": "cpu", "model.layers": "cpu", "model.norm": "cpu", '
    '"model.rotary_emb": "cpu", "lm_head": "cpu"}'
)
LOAD_4BIT = "model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=bnb4)"
SETUP_4BIT = "bnb4 = BitsAndBytesConfig(load_in_4bit=True)\n" + LOAD_4BIT
SETUP_8BIT = (
    "model = AutoModelForCausalLM.from_pretrained(\n"
    "    tmp, quantization_config=BitsAndBytesConfig(load_in_8bit=True)\n"
    ")"
)
FORWARD = "out = model(torch.tensor([[1, 2, 3]]))"


@dataclass(frozen=True)
class Case:
    """One observable behaviour. ``code`` is executed verbatim inside the capture window."""

    id: str
    rule: str
    title: str
    code: str
    expected: str
    setup: str = ""


def load(args: str) -> str:
    """Render a ``from_pretrained`` call on the tiny checkpoint with the given arguments."""
    return f"model = AutoModelForCausalLM.from_pretrained(tmp, {args})"


def load_cfg(cfg_args: str, extra: str = "") -> str:
    """Render a ``from_pretrained`` call with ``BitsAndBytesConfig(cfg_args)``."""
    tail = f", {extra}" if extra else ""
    return load(f"quantization_config=BitsAndBytesConfig({cfg_args}){tail}")


CASES: tuple[Case, ...] = (
    # --- BNB002: 4-bit without compute dtype ---------------------------------------------------
    Case(
        "BNB002-default-compute",
        "BNB002",
        "4-bit load, no bnb_4bit_compute_dtype, no dtype",
        load_cfg("load_in_4bit=True"),
        "Linear4bit compute dtype float32; record whether any warning is emitted",
    ),
    Case(
        "BNB002-default-compute-forward",
        "BNB002",
        "forward pass on the model above (compute dtype after forward, warnings)",
        FORWARD,
        "(extra) record compute dtype after a forward and any warning",
        setup=SETUP_4BIT,
    ),
    Case(
        "BNB002-fixed",
        "BNB002",
        "4-bit load with bnb_4bit_compute_dtype=torch.float16",
        load_cfg("load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16"),
        "Linear4bit compute dtype float16",
    ),
    # --- BNB001: no device_map -----------------------------------------------------------------
    Case(
        "BNB001-no-device-map",
        "BNB001",
        "4-bit load without device_map",
        load_cfg("load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16"),
        "INFO 'The device_map was not initialized...'; record hf_device_map",
    ),
    Case(
        "BNB001-device-map-auto",
        "BNB001",
        "4-bit load with device_map='auto' (control)",
        load_cfg("load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16", 'device_map="auto"'),
        "(control) record hf_device_map",
    ),
    # --- BNB003: compute dtype differs from model dtype -----------------------------------------
    Case(
        "BNB003-bf16-compute-fp16-dtype",
        "BNB003",
        "compute bfloat16 with dtype=torch.float16",
        load_cfg("load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16", "dtype=torch.float16"),
        "loads; record compute dtype and model dtype",
    ),
    Case(
        "BNB003-bf16-compute-fp16-dtype-forward",
        "BNB003",
        "forward pass on the model above",
        FORWARD,
        "(extra) record logits dtype and warnings",
        setup=(
            "model = AutoModelForCausalLM.from_pretrained(\n"
            "    tmp,\n"
            "    quantization_config=BitsAndBytesConfig(\n"
            "        load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16\n"
            "    ),\n"
            "    dtype=torch.float16,\n"
            ")"
        ),
    ),
    # --- BNB004: deprecated load_in_4bit kwarg -------------------------------------------------
    Case(
        "BNB004-kwarg",
        "BNB004",
        "from_pretrained(tmp, load_in_4bit=True)",
        load("load_in_4bit=True"),
        "5.x: TypeError; 4.57.1: deprecation warning",
    ),
    Case(
        "BNB004-kwarg-and-config",
        "BNB004",
        "load_in_4bit=True together with quantization_config=...",
        load("load_in_4bit=True, quantization_config=BitsAndBytesConfig(load_in_4bit=True)"),
        "4.57.1: ValueError",
    ),
    Case(
        "BNB004-pipeline-kwarg",
        "BNB004",
        "pipeline(..., model_kwargs={'load_in_4bit': True})",
        'pipe = pipeline("text-generation", model=tmp, model_kwargs={"load_in_4bit": True})',
        "same as from_pretrained(load_in_4bit=True)",
    ),
    Case(
        "BNB004-pipeline-config",
        "BNB004",
        "pipeline with model_kwargs quantization_config (control)",
        'pipe = pipeline("text-generation", model=tmp, '
        'model_kwargs={"quantization_config": BitsAndBytesConfig(load_in_4bit=True)})',
        "(control) loads 4-bit",
    ),
    # --- BNB005: mixed GPU/CPU device_map without fp32 offload ----------------------------------
    Case(
        "BNB005-mixed-map",
        "BNB005",
        "GPU-index + 'cpu' device_map, no llm_int8_enable_fp32_cpu_offload",
        load_cfg("load_in_4bit=True", f"device_map={MIXED_MAP}"),
        "record what happens on a CPU-only machine",
    ),
    Case(
        "BNB005-mixed-map-offload",
        "BNB005",
        "same map with llm_int8_enable_fp32_cpu_offload=True",
        load_cfg(
            "load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=True",
            f"device_map={MIXED_MAP}",
        ),
        "record what happens on a CPU-only machine",
    ),
    Case(
        "BNB005-all-cpu-map",
        "BNB005",
        "all-'cpu' device_map, no offload flag",
        load_cfg("load_in_4bit=True", f"device_map={ALL_CPU_MAP}"),
        "loads",
    ),
    Case(
        "BNB005-single-cpu-map",
        "BNB005",
        "single-key device_map={'': 'cpu'} (control for the per-module all-cpu map)",
        load_cfg("load_in_4bit=True", 'device_map={"": "cpu"}'),
        "(control) loads",
    ),
    # --- BNB006: casting a quantized model -----------------------------------------------------
    Case(
        "BNB006-4bit-half",
        "BNB006",
        "4-bit model .half()",
        "model.half()",
        "record",
        setup=SETUP_4BIT,
    ),
    Case(
        "BNB006-4bit-float",
        "BNB006",
        "4-bit model .float()",
        "model.float()",
        "record",
        setup=SETUP_4BIT,
    ),
    Case(
        "BNB006-4bit-to-fp16",
        "BNB006",
        "4-bit model .to(torch.float16)",
        "model.to(torch.float16)",
        "record",
        setup=SETUP_4BIT,
    ),
    Case(
        "BNB006-4bit-to-dtype-kwarg",
        "BNB006",
        "4-bit model .to(dtype=torch.float16)",
        "model.to(dtype=torch.float16)",
        "(extra) record",
        setup=SETUP_4BIT,
    ),
    Case(
        "BNB006-4bit-to-cpu",
        "BNB006",
        "4-bit model .to('cpu')",
        'model.to("cpu")',
        "record",
        setup=SETUP_4BIT,
    ),
    Case(
        "BNB006-4bit-bfloat16",
        "BNB006",
        "4-bit model loaded in float16, then .bfloat16()",
        "model.bfloat16()",
        "(extra) record",
        setup="bnb4 = BitsAndBytesConfig(load_in_4bit=True)\n"
        + LOAD_4BIT[:-1]
        + ", dtype=torch.float16)",
    ),
    Case(
        "BNB006-8bit-load",
        "BNB006",
        "8-bit load on CPU",
        SETUP_8BIT,
        "record whether 8-bit loads on CPU",
    ),
    Case(
        "BNB006-8bit-half",
        "BNB006",
        "8-bit model .half()",
        "model.half()",
        "record",
        setup=SETUP_8BIT,
    ),
    Case(
        "BNB006-8bit-to-fp16",
        "BNB006",
        "8-bit model .to(torch.float16)",
        "model.to(torch.float16)",
        "record",
        setup=SETUP_8BIT,
    ),
    Case(
        "BNB006-8bit-to-cpu",
        "BNB006",
        "8-bit model .to('cpu')",
        'model.to("cpu")',
        "record",
        setup=SETUP_8BIT,
    ),
    # --- BNB007: invalid BitsAndBytesConfig values ---------------------------------------------
    Case(
        "BNB007-both-flags",
        "BNB007",
        "load_in_4bit=True, load_in_8bit=True",
        "cfg = BitsAndBytesConfig(load_in_4bit=True, load_in_8bit=True)",
        "ValueError",
    ),
    Case(
        "BNB007-quant-type-NF4-construct",
        "BNB007",
        "bnb_4bit_quant_type='NF4' (construct)",
        'cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="NF4")',
        "record",
    ),
    Case(
        "BNB007-quant-type-NF4-load",
        "BNB007",
        "bnb_4bit_quant_type='NF4' (load)",
        load_cfg('load_in_4bit=True, bnb_4bit_quant_type="NF4"'),
        "record",
    ),
    Case(
        "BNB007-quant-type-nf8-construct",
        "BNB007",
        "bnb_4bit_quant_type='nf8' (construct)",
        'cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf8")',
        "record",
    ),
    Case(
        "BNB007-quant-type-nf8-load",
        "BNB007",
        "bnb_4bit_quant_type='nf8' (load)",
        load_cfg('load_in_4bit=True, bnb_4bit_quant_type="nf8"'),
        "record",
    ),
    Case(
        "BNB007-compute-bf16-str",
        "BNB007",
        "bnb_4bit_compute_dtype='bf16'",
        'cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="bf16")',
        "error",
    ),
    Case(
        "BNB007-compute-torch.bfloat16-str",
        "BNB007",
        "bnb_4bit_compute_dtype='torch.bfloat16'",
        'cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="torch.bfloat16")',
        "error",
    ),
    Case(
        "BNB007-compute-auto-str",
        "BNB007",
        "bnb_4bit_compute_dtype='auto'",
        'cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="auto")',
        "error",
    ),
    Case(
        "BNB007-compute-bfloat16-str",
        "BNB007",
        "bnb_4bit_compute_dtype='bfloat16' (load)",
        load_cfg('load_in_4bit=True, bnb_4bit_compute_dtype="bfloat16"'),
        "works; compute dtype bfloat16",
    ),
    Case(
        "BNB007-threshold-int",
        "BNB007",
        "llm_int8_threshold=6 (int)",
        "cfg = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6)",
        "record",
    ),
    Case(
        "BNB007-skip-modules-str",
        "BNB007",
        "llm_int8_skip_modules='lm_head' (str)",
        'cfg = BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules="lm_head")',
        "record",
    ),
    Case(
        "BNB007-load-in-4bit-str",
        "BNB007",
        "load_in_4bit='True' (str)",
        'cfg = BitsAndBytesConfig(load_in_4bit="True")',
        "record",
    ),
    # --- BNB008: unknown keyword silently ignored ----------------------------------------------
    Case(
        "BNB008-unknown-kwarg",
        "BNB008",
        "typo bnb_4bit_compute_type=torch.float16",
        load_cfg("load_in_4bit=True, bnb_4bit_compute_type=torch.float16"),
        "INFO 'Unused kwargs'; compute dtype stays float32",
    ),
    Case(
        "BNB008-unknown-key-dict",
        "BNB008",
        "dict config with typo key",
        load('quantization_config={"load_in_4bit": True, "bnb_4bit_compute_type": "float16"}'),
        "INFO 'Unused kwargs'; compute dtype stays float32",
    ),
    # --- BNB009: options that do nothing -------------------------------------------------------
    Case(
        "BNB009-no-flags",
        "BNB009",
        "BitsAndBytesConfig() with neither flag",
        load("quantization_config=BitsAndBytesConfig()"),
        "record load_in_4bit attribute and resulting layer class",
    ),
    Case(
        "BNB009-8bit-with-4bit-option",
        "BNB009",
        "load_in_8bit=True with bnb_4bit_compute_dtype=torch.float16",
        load_cfg("load_in_8bit=True, bnb_4bit_compute_dtype=torch.float16"),
        "option ignored",
    ),
    Case(
        "BNB009-4bit-with-int8-option",
        "BNB009",
        "load_in_4bit=True with llm_int8_threshold=5.0",
        load_cfg("load_in_4bit=True, llm_int8_threshold=5.0"),
        "option ignored",
    ),
    # --- other facts ---------------------------------------------------------------------------
    Case(
        "DICT-config",
        "BNB008",
        "dict quantization_config with compute dtype 'float16'",
        load('quantization_config={"load_in_4bit": True, "bnb_4bit_compute_dtype": "float16"}'),
        "loads with float16 compute",
    ),
    Case(
        "SKIP-custom-list",
        "BNB009",
        "llm_int8_skip_modules=['foo'] with 4-bit",
        load_cfg('load_in_4bit=True, llm_int8_skip_modules=["foo"]'),
        "record lm_head class",
    ),
)


# ----------------------------------------------------------------------------------------------
# Worker side: everything below imports torch/transformers lazily.
# ----------------------------------------------------------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def _log_lines(records: list[logging.LogRecord]) -> tuple[list[str], int, list[str]]:
    """First lines of the relevant records, how many were ignored, and errors quoted inside."""
    lines: list[str] = []
    inner: list[str] = []
    ignored = 0
    for rec in records:
        full = ANSI_ESCAPE.sub("", rec.getMessage())
        msg = _first_line(full)
        if any(p.search(msg) for p in IGNORED_LOGS):
            ignored += 1
            continue
        if rec.levelno < logging.WARNING and (
            not RELEVANT_INFO.search(msg) or NOISY_INFO.search(msg)
        ):
            continue
        line = f"{rec.levelname} {rec.name}: {msg}"
        if line not in lines:
            lines.append(line)
        inner.extend(e for e in _inner_errors(full) if e not in inner)
    return lines, ignored, inner


def _inner_errors(message: str) -> list[str]:
    found: list[str] = []
    for raw in message.splitlines()[1:]:
        match = INNER_ERROR.match(raw)
        if match and f"{match[1]}: {match[2]}" not in found:
            found.append(f"{match[1]}: {match[2]}")
    return found


def _warning_lines(caught: list[warnings.WarningMessage]) -> tuple[list[str], int]:
    lines: list[str] = []
    ignored = 0
    for w in caught:
        msg = _first_line(str(w.message))
        if any(p.search(msg) for p in IGNORED_WARNINGS):
            ignored += 1
            continue
        line = f"{w.category.__name__}: {msg}"
        if line not in lines:
            lines.append(line)
    return lines, ignored


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return str(value)


def _describe_config(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, dict):
        return {"type": "dict", **_jsonable(cfg)}
    fields = (
        "load_in_4bit",
        "load_in_8bit",
        "bnb_4bit_compute_dtype",
        "bnb_4bit_quant_type",
        "llm_int8_threshold",
        "llm_int8_skip_modules",
        "llm_int8_enable_fp32_cpu_offload",
    )
    out: dict[str, Any] = {"type": type(cfg).__name__}
    for name in fields:
        out[name] = _jsonable(getattr(cfg, name, "<absent>"))
    return out


def _describe_model(model: Any) -> dict[str, Any]:
    quantized: dict[str, int] = {}
    first: Any = None
    for _, module in model.named_modules():
        if type(module).__module__.startswith("bitsandbytes"):
            name = type(module).__name__
            quantized[name] = quantized.get(name, 0) + 1
            first = first if first is not None else module
    info: dict[str, Any] = {
        "model_class": type(model).__name__,
        "model_dtype": str(getattr(model, "dtype", None)),
        "hf_device_map": _jsonable(getattr(model, "hf_device_map", "<absent>")),
        "param_devices": sorted({str(p.device) for p in model.parameters()}),
        "is_loaded_in_4bit": getattr(model, "is_loaded_in_4bit", None),
        "is_loaded_in_8bit": getattr(model, "is_loaded_in_8bit", None),
        "quantized_layer_counts": quantized,
        "embed_tokens_dtype": str(model.get_input_embeddings().weight.dtype),
    }
    lm_head = model.get_output_embeddings()
    if lm_head is not None:
        info["lm_head_class"] = type(lm_head).__name__
        info["lm_head_weight_dtype"] = str(lm_head.weight.dtype)
    if first is not None:
        weight = first.weight
        state = getattr(weight, "quant_state", None)
        info["quantized_layer"] = {
            "class": type(first).__name__,
            "compute_dtype": _jsonable(getattr(first, "compute_dtype", "<absent>")),
            "weight_dtype": str(weight.dtype),
            "quant_state_dtype": str(state.dtype) if state is not None else None,
            "quant_state_quant_type": getattr(state, "quant_type", None),
            "threshold": _jsonable(getattr(getattr(first, "state", None), "threshold", None)),
        }
    qcfg = getattr(model.config, "quantization_config", None)
    if qcfg is not None:
        info["model_config_quantization_config"] = _describe_config(qcfg)
    return info


def _observe(namespace: dict[str, Any]) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    if "pipe" in namespace:
        obs["pipeline_model"] = _describe_model(namespace["pipe"].model)
    if "model" in namespace:
        obs["model"] = _describe_model(namespace["model"])
    if "cfg" in namespace:
        obs["config"] = _describe_config(namespace["cfg"])
    if "bnb4" in namespace:
        obs["config"] = _describe_config(namespace["bnb4"])
    out = namespace.get("out")
    if out is not None and hasattr(out, "logits"):
        obs["logits_dtype"] = str(out.logits.dtype)
    return obs


def _base_namespace(model_dir: str) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, pipeline

    return {
        "torch": torch,
        "AutoModelForCausalLM": AutoModelForCausalLM,
        "BitsAndBytesConfig": BitsAndBytesConfig,
        "pipeline": pipeline,
        "tmp": model_dir,
    }


def run_case(case: Case, model_dir: str) -> dict[str, Any]:
    """Execute one case in this process and return its observations (worker side)."""
    import transformers

    transformers.logging.set_verbosity_info()
    transformers.logging.disable_progress_bar()
    namespace = _base_namespace(model_dir)
    result: dict[str, Any] = asdict(case)

    if case.setup:
        try:
            exec(case.setup, namespace)
        except Exception as exc:  # noqa: BLE001 - recorded, not handled
            result.update(
                outcome="setup_error",
                error_type=type(exc).__name__,
                error_message=_first_line(str(exc)),
            )
            return result
        # The capture window covers ``code`` only; describe the state before it runs.
        result["observations_before"] = _observe(namespace)

    handler = _ListHandler()
    loggers = [logging.getLogger(name) for name in CAPTURED_LOGGERS]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exec(case.code, namespace)
            result.update(outcome="ok", error_type=None, error_message=None)
        except Exception as exc:  # noqa: BLE001 - recorded, not handled
            result.update(
                outcome="error",
                error_type=type(exc).__name__,
                error_message=_first_line(str(exc)),
                error_inner=_inner_errors(str(exc)),
                error_raised_at=_raise_site(exc),
            )
    for lg in loggers:
        lg.removeHandler(handler)

    lines, ignored, inner = _log_lines(handler.records)
    result["log_lines"] = lines
    result["log_inner_errors"] = inner
    result["ignored_log_lines"] = ignored
    result["warnings"], result["ignored_warnings"] = _warning_lines(caught)
    result["observations"] = _observe(namespace)
    return result


def _raise_site(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    parts = Path(last.filename).parts
    short = (
        "/".join(parts[parts.index("site-packages") + 1 :])
        if "site-packages" in parts
        else (last.filename)
    )
    return f"{short}:{last.lineno} in {last.name}"


def versions() -> dict[str, Any]:
    """Package versions plus what importing bitsandbytes logs/warns (worker side)."""
    handler = _ListHandler()
    for name in CAPTURED_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import accelerate
        import bitsandbytes
        import torch
        import transformers
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bitsandbytes": bitsandbytes.__version__,
        "accelerate": accelerate.__version__,
        "cuda_available": torch.cuda.is_available(),
        "import_log_lines": [
            f"{r.levelname} {r.name}: {_first_line(r.getMessage())}" for r in handler.records
        ],
        "import_warnings": _warning_lines(caught)[0],
    }


def build_model(model_dir: str) -> None:
    """Save a tiny random bf16 Llama plus a word-level tokenizer to ``model_dir`` (worker side)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
    )
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(model_dir)

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, 256)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.save_pretrained(model_dir)


# ----------------------------------------------------------------------------------------------
# Orchestrator side: stdlib only.
# ----------------------------------------------------------------------------------------------


def _spawn(args: list[str], result_file: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--result-file", str(result_file)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, env=env, check=False
    )
    if proc.returncode != 0 or not result_file.exists():
        return {
            "outcome": "worker_crashed",
            "returncode": proc.returncode,
            "stderr_tail": proc.stderr[-2000:],
        }
    return json.loads(result_file.read_text())


def run_all(out: Path, jobs: int, only: list[str]) -> dict[str, Any]:
    selected = [c for c in CASES if not only or c.id in only]
    with tempfile.TemporaryDirectory(prefix="cpu_facts_") as work:
        work_dir = Path(work)
        model_dir = work_dir / "tiny-llama"
        env_info = _spawn(["--versions"], work_dir / "versions.json")
        built = _spawn(["--build-model", str(model_dir)], work_dir / "build.json")
        if built.get("outcome") != "ok":
            raise SystemExit(f"could not build the tiny model: {built}")

        def one(case: Case) -> dict[str, Any]:
            start = time.monotonic()
            res = _spawn(
                ["--worker", case.id, "--model-dir", str(model_dir)],
                work_dir / f"{case.id}.json",
            )
            if res.get("outcome") == "worker_crashed":
                res = {**asdict(case), **res}
            print(f"{case.id}: {res['outcome']} ({time.monotonic() - start:.1f}s)", flush=True)
            return res

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, selected))

    report = {
        "generated_by": "evidence/cpu_facts.py",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": "tiny random LlamaForCausalLM (hidden 64, 2 layers, vocab 256) saved in bf16",
        "versions": env_info,
        "cases": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _summary(case: dict[str, Any]) -> str:
    if case["outcome"] != "ok":
        text = f"{case['outcome']}: {case.get('error_type')}: {case.get('error_message')}"
        inner = case.get("error_inner") or []
        return text + (f" (wrapped: {'; '.join(inner)})" if inner else "")
    obs = case.get("observations", {})
    model = obs.get("model") or obs.get("pipeline_model")
    parts = ["ok"]
    if model:
        layer = model.get("quantized_layer", {})
        if layer:
            parts.append(f"{layer['class']} compute={layer['compute_dtype']}")
        else:
            parts.append("no bitsandbytes layer")
        before = (case.get("observations_before") or {}).get("model") or {}
        was = before.get("model_dtype", model["model_dtype"])
        changed = f" (before: {was})" if was != model["model_dtype"] else ""
        parts.append(f"model dtype={model['model_dtype']}{changed}")
        parts.append(f"lm_head={model.get('lm_head_class')}")
        parts.append(f"hf_device_map={model['hf_device_map']}")
    elif "config" in obs:
        cfg = obs["config"]
        parts.append(
            f"config load_in_4bit={cfg.get('load_in_4bit')} "
            f"quant_type={cfg.get('bnb_4bit_quant_type')} "
            f"compute={cfg.get('bnb_4bit_compute_dtype')}"
        )
    if "logits_dtype" in obs:
        parts.append(f"logits={obs['logits_dtype']}")
    return "; ".join(parts)


def render_table(report: dict[str, Any]) -> str:
    v = report["versions"]
    lines = [
        f"transformers {v['transformers']}, bitsandbytes {v['bitsandbytes']}, torch {v['torch']}, "
        f"accelerate {v['accelerate']}, Python {v['python']}",
        "",
        "| case | code | outcome | warnings / log lines |",
        "| --- | --- | --- | --- |",
    ]
    for case in report["cases"]:
        notes = [*case.get("warnings", []), *case.get("log_lines", [])]
        notes += [f"(quoted in log) {e}" for e in case.get("log_inner_errors", [])]
        lines.append(
            f"| {case['id']} | `{_cell(case['code'])}` | {_cell(_summary(case))} | "
            f"{_cell('<br>'.join(notes)) if notes else '(none)'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report path")
    parser.add_argument("--jobs", type=int, default=2, help="cases run in parallel")
    parser.add_argument("--only", nargs="*", default=[], help="case ids to run")
    parser.add_argument("--table", type=Path, help="print a markdown table of a report and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--versions", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--build-model", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.table:
        print(render_table(json.loads(args.table.read_text())))
        return 0
    if args.result_file:
        if args.versions:
            payload = versions()
        elif args.build_model:
            build_model(args.build_model)
            payload = {"outcome": "ok"}
        else:
            case = next(c for c in CASES if c.id == args.worker)
            payload = run_case(case, args.model_dir)
        text = json.dumps(_jsonable(payload), indent=2)
        if args.model_dir:  # the temp path differs per run; keep reports comparable
            text = text.replace(args.model_dir, "<tmp>")
        args.result_file.write_text(text)
        return 0

    unknown = set(args.only) - {c.id for c in CASES}
    if unknown:
        parser.error(f"unknown case ids: {sorted(unknown)}")
    report = run_all(args.out, args.jobs, args.only)
    print(f"wrote {args.out} ({len(report['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
