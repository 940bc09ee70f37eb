"""Reproduce on CPU what BNB007 (invalid-config-value) cites: each invalid literal value of a
transformers ``BitsAndBytesConfig`` (or dict config), where it fails (construction or load) and
with which exception, and that each fix the rule writes makes the load work.

Not part of the test suite. Run it with an interpreter that has torch, transformers,
bitsandbytes and accelerate (no download: a tiny random Llama is saved to a temp dir):

    /tmp/evvenv/bin/python evidence/repro_bnb007.py   >  evidence/repro_bnb007.txt
    /tmp/evvenv4/bin/python evidence/repro_bnb007.py  >> evidence/repro_bnb007.txt

Each case is ``(id, config expression)``: the expression is built first (``construct``), then,
when construction works, passed to ``AutoModelForCausalLM.from_pretrained(tmp,
quantization_config=...)`` (``load``). Dict configs are passed to the load as they are.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import tempfile
import warnings
from typing import Any

ERROR_LINE = re.compile(r"^\s*([A-Za-z_.]+(?:Error|Exception)): (.+)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

CASES: tuple[tuple[str, str], ...] = (
    # both flags
    ("both-flags", "BitsAndBytesConfig(load_in_4bit=True, load_in_8bit=True)"),
    ("dict-both-flags", '{"load_in_4bit": True, "load_in_8bit": True}'),
    # booleans given as strings / ints
    ("load_in_4bit-str-True", 'BitsAndBytesConfig(load_in_4bit="True")'),
    ("load_in_4bit-str-False", 'BitsAndBytesConfig(load_in_4bit="False")'),
    ("load_in_4bit-str-False+8bit", 'BitsAndBytesConfig(load_in_4bit="False", load_in_8bit=True)'),
    ("load_in_8bit-str-True", 'BitsAndBytesConfig(load_in_8bit="True")'),
    ("load_in_4bit-int-1", "BitsAndBytesConfig(load_in_4bit=1)"),
    ("dict-load_in_4bit-str", '{"load_in_4bit": "True"}'),
    ("load_in_8bit-None", "BitsAndBytesConfig(load_in_4bit=True, load_in_8bit=None)"),
    (
        "double_quant-str",
        'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_use_double_quant="True")',
    ),
    (
        "fp32_cpu_offload-str",
        'BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload="True")',
    ),
    (
        "has_fp16_weight-str",
        'BitsAndBytesConfig(load_in_8bit=True, llm_int8_has_fp16_weight="False")',
    ),
    # threshold
    ("threshold-int", "BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6)"),
    ("threshold-str", 'BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold="6.0")'),
    ("dict-threshold-int", '{"load_in_8bit": True, "llm_int8_threshold": 6}'),
    ("threshold-None", "BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=None)"),
    # skip modules
    ("skip-str", 'BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules="lm_head")'),
    ("skip-tuple", 'BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=("lm_head",))'),
    # compute dtype strings
    ("compute-bf16", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="bf16")'),
    ("compute-fp16", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="fp16")'),
    ("compute-fp32", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="fp32")'),
    (
        "compute-torch.bfloat16-str",
        'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="torch.bfloat16")',
    ),
    (
        "compute-torch.float16-str",
        'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="torch.float16")',
    ),
    ("compute-auto", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="auto")'),
    ("compute-int", "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=16)"),
    ("dict-compute-bf16", '{"load_in_4bit": True, "bnb_4bit_compute_dtype": "bf16"}'),
    ("compute-8bit-bf16", 'BitsAndBytesConfig(load_in_8bit=True, bnb_4bit_compute_dtype="bf16")'),
    # quant type
    ("quant_type-NF4", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="NF4")'),
    ("quant_type-FP4", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="FP4")'),
    ("quant_type-nf8", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf8")'),
    ("quant_type-int", "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=4)"),
    ("quant_type-None", "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=None)"),
    ("quant_type-dtype", "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=torch.uint8)"),
    ("threshold-dtype", "BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=torch.float16)"),
    ("dict-quant_type-NF4", '{"load_in_4bit": True, "bnb_4bit_quant_type": "NF4"}'),
    ("quant_type-NF4-8bit", 'BitsAndBytesConfig(load_in_8bit=True, bnb_4bit_quant_type="NF4")'),
    # quant storage
    ("storage-bf16", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_storage="bf16")'),
    ("storage-int", "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_storage=8)"),
    # controls: the valid spellings, and what each fix writes
    (
        "ok-compute-bfloat16-str",
        'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="bfloat16")',
    ),
    ("ok-compute-half-str", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="half")'),
    (
        "ok-compute-torch.bfloat16",
        "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)",
    ),
    ("ok-dict-compute-bfloat16", '{"load_in_4bit": True, "bnb_4bit_compute_dtype": "bfloat16"}'),
    ("ok-quant_type-nf4", 'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")'),
    ("ok-threshold-float", "BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6.0)"),
    ("ok-skip-list", 'BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["lm_head"])'),
    ("ok-load_in_4bit-True", "BitsAndBytesConfig(load_in_4bit=True)"),
    ("ok-compute-None", "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=None)"),
    ("ok-skip-None", "BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=None)"),
    (
        "ok-storage-bfloat16",
        'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_storage="bfloat16")',
    ),
)


def versions() -> str:
    import bitsandbytes
    import torch
    import transformers

    return (
        f"python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, bitsandbytes {bitsandbytes.__version__}"
    )


def checkpoint() -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=256,
    )
    tmp = tempfile.mkdtemp()
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(tmp)
    return tmp


class Capture:
    """Collects transformers/bitsandbytes log records (INFO and up) while active."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.loggers = [logging.getLogger(n) for n in ("transformers", "bitsandbytes")]

    def __enter__(self) -> Capture:
        import transformers

        transformers.logging.set_verbosity_info()
        for logger in self.loggers:
            logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self.loggers:
            logger.removeHandler(self.handler)

    def lines(self, pattern: str) -> list[str]:
        text = ANSI.sub("", self.stream.getvalue())
        return [line for line in text.splitlines() if re.search(pattern, line)]

    def inner_errors(self) -> list[str]:
        text = ANSI.sub("", self.stream.getvalue())
        found = []
        for line in text.splitlines():
            m = ERROR_LINE.match(line)
            if m and f"{m.group(1)}: {m.group(2)}" not in found:
                found.append(f"{m.group(1)}: {m.group(2)}")
        return found


def describe(model: Any) -> str:
    """The first quantized layer's class and the attributes the options control."""
    layer = model.model.layers[0].self_attn.q_proj
    parts = [type(layer).__name__]
    if hasattr(layer, "compute_dtype"):
        parts.append(f"compute_dtype={layer.compute_dtype}")
    quant_state = getattr(layer.weight, "quant_state", None)
    if quant_state is not None:
        parts.append(f"quant_type={quant_state.quant_type}")
    if hasattr(layer, "state") and hasattr(layer.state, "threshold"):
        parts.append(f"threshold={layer.state.threshold}")
    parts.append(f"lm_head={type(model.lm_head).__name__}")
    return ", ".join(parts)


def run_case(
    case_id: str, expression: str, tmp: str, log_pattern: str = r"Unused kwargs"
) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    namespace = {"torch": torch, "BitsAndBytesConfig": BitsAndBytesConfig}
    out = [f"[{case_id}] {expression}"]
    with Capture() as capture, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stage = "construct"
        try:
            config = eval(expression, namespace)
            stage = "load"
            model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=config)
            out.append(f"  ok: {describe(model)}")
        except Exception as e:  # noqa: BLE001 - the exception is the fact being recorded
            message = str(e).splitlines()[0] if str(e) else ""
            out.append(f"  fails at {stage}: {type(e).__name__}: {message}")
            for inner in capture.inner_errors():
                out.append(f"    inner: {inner}")
    for line in capture.lines(log_pattern):
        out.append(f"  log: {line}")
    return out


def main(cases: tuple[tuple[str, str], ...] = CASES, log_pattern: str = r"Unused kwargs") -> None:
    import bitsandbytes  # noqa: F401 - imported early so its import-time log is not captured

    print(f"== {versions()}")
    tmp = checkpoint()
    for case_id, expression in cases:
        print("\n".join(run_case(case_id, expression, tmp, log_pattern)))
    print()


if __name__ == "__main__":
    main()
