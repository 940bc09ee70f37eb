"""Reproduce, on CPU, what transformers does with legacy ``load_in_4bit``/``load_in_8bit`` keywords.

BNB004 (legacy-load-kwargs) needs these facts; ``evidence/cpu_facts.json`` has the main ones, this
adds the cases that decide the rule's edge cases and fix:
``load_in_8bit=False`` alone, an explicit ``BitsAndBytesConfig(load_in_4bit=False)``,
bitsandbytes options passed next to the legacy keyword, ``pipeline(load_in_4bit=True)``.

Usage (each interpreter needs torch, transformers, bitsandbytes and accelerate; nothing is
downloaded, the model is a tiny random bf16 Llama saved to a temporary directory):

    python evidence/repro_bnb004.py /tmp/evvenv/bin/python /tmp/evvenv4/bin/python \
        > evidence/repro_bnb004.txt

Each case runs in a fresh worker process; its code is executed verbatim with ``tmp`` bound to the
checkpoint, and the outcome (error or quantization state, transformers warnings) is printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CASES = [
    ("legacy-4bit-true", "model = AutoModelForCausalLM.from_pretrained(tmp, load_in_4bit=True)"),
    ("legacy-8bit-true", "model = AutoModelForCausalLM.from_pretrained(tmp, load_in_8bit=True)"),
    ("legacy-8bit-false", "model = AutoModelForCausalLM.from_pretrained(tmp, load_in_8bit=False)"),
    ("legacy-4bit-false", "model = AutoModelForCausalLM.from_pretrained(tmp, load_in_4bit=False)"),
    (
        "legacy-false-with-config",
        "model = AutoModelForCausalLM.from_pretrained(tmp, load_in_8bit=False, "
        "quantization_config=BitsAndBytesConfig(load_in_4bit=True))",
    ),
    (
        "legacy-true-with-config",
        "model = AutoModelForCausalLM.from_pretrained(tmp, load_in_4bit=True, "
        "quantization_config=BitsAndBytesConfig(load_in_4bit=True))",
    ),
    (
        "legacy-with-bnb-option",
        "model = AutoModelForCausalLM.from_pretrained(tmp, load_in_4bit=True, "
        "bnb_4bit_compute_dtype=torch.float16, bnb_4bit_quant_type='nf4')",
    ),
    (
        "bnb-option-without-legacy",
        "model = AutoModelForCausalLM.from_pretrained(tmp, "
        "quantization_config=BitsAndBytesConfig(load_in_4bit=True), "
        "bnb_4bit_compute_dtype=torch.float16)",
    ),
    (
        "fixed-4bit",
        "model = AutoModelForCausalLM.from_pretrained(tmp, "
        "quantization_config=BitsAndBytesConfig(load_in_4bit=True))",
    ),
    (
        "fixed-8bit",
        "model = AutoModelForCausalLM.from_pretrained(tmp, "
        "quantization_config=BitsAndBytesConfig(load_in_8bit=True))",
    ),
    (
        "fixed-with-options",
        "model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        "load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16, bnb_4bit_quant_type='nf4'))",
    ),
    (
        "config-4bit-false",
        "model = AutoModelForCausalLM.from_pretrained(tmp, "
        "quantization_config=BitsAndBytesConfig(load_in_4bit=False))",
    ),
    (
        "conditional-config-false",
        "flag = False\nmodel = AutoModelForCausalLM.from_pretrained(tmp, "
        "quantization_config=BitsAndBytesConfig(load_in_4bit=True) if flag else None)",
    ),
    (
        "pipeline-direct-kwarg",
        'pipe = pipeline("text-generation", model=tmp, load_in_4bit=True)\nmodel = pipe.model',
    ),
    (
        "pipeline-model-kwargs-fixed",
        'pipe = pipeline("text-generation", model=tmp, '
        'model_kwargs={"quantization_config": BitsAndBytesConfig(load_in_4bit=True)})\n'
        "model = pipe.model",
    ),
]

WORKER = r"""
import json, logging, sys, warnings
import torch
import transformers
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, pipeline

tmp, code = sys.argv[1], sys.argv[2]
records = []
class H(logging.Handler):
    def emit(self, r):
        if r.levelno >= logging.WARNING:
            records.append(f"{r.levelname} {r.name}: {r.getMessage().splitlines()[0]}")
handler = H()
logging.getLogger("transformers").addHandler(handler)
out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ns = {"tmp": tmp, "torch": torch, "AutoModelForCausalLM": AutoModelForCausalLM,
          "BitsAndBytesConfig": BitsAndBytesConfig, "pipeline": pipeline}
    try:
        exec(code, ns)
        model = ns["model"]
        layers = {}
        for m in model.modules():
            name = type(m).__name__
            if name in ("Linear4bit", "Linear8bitLt"):
                layers[name] = layers.get(name, 0) + 1
        out["outcome"] = "ok"
        out["quantized_layers"] = layers or "none (not quantized)"
        q = getattr(model.config, "quantization_config", None)
        if q is not None:
            d = q if isinstance(q, dict) else q.to_dict()
            out["config"] = {k: str(d.get(k)) for k in
                             ("load_in_4bit", "load_in_8bit", "bnb_4bit_compute_dtype",
                              "bnb_4bit_quant_type")}
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else ""
        out["outcome"] = f"{type(exc).__name__}: {msg}"
        inner = [l.strip() for l in str(exc).splitlines()[1:] if "Error:" in l]
        if inner:
            out["inner"] = inner
out["warnings"] = records + [
    f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught
    if "load_in" in str(w.message) or "deprecat" in str(w.message).lower()
    and "jit" not in str(w.message)
]
print(json.dumps(out))
"""

BUILD = r"""
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers
torch.manual_seed(0)
cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(sys.argv[1])
vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, 256)}}
backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
backend.pre_tokenizer = pre_tokenizers.Whitespace()
PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                        eos_token="</s>").save_pretrained(sys.argv[1])
"""

VERSIONS = (
    "import torch, transformers, bitsandbytes; "
    "print(f'torch {torch.__version__}, transformers {transformers.__version__}, "
    "bitsandbytes {bitsandbytes.__version__}')"
)


def main(pythons: list[str]) -> None:
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin"}
    for python in pythons:

        def run(*a: str, python: str = python) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [python, *a], capture_output=True, text=True, env=env, check=False
            )

        versions = run("-c", VERSIONS).stdout.strip()
        print(f"## {versions} (CPU)")
        with tempfile.TemporaryDirectory() as tmp:
            built = run("-c", BUILD, tmp)
            if built.returncode != 0:
                print("cannot build the model:", built.stderr[-2000:])
                continue
            for case_id, code in CASES:
                proc = run("-c", WORKER, tmp, code)
                lines = proc.stdout.strip().splitlines()
                try:
                    result = json.loads(lines[-1])
                except (IndexError, json.JSONDecodeError):
                    result = {"outcome": "worker crashed", "stderr": proc.stderr[-500:]}
                print(f"- {case_id}: `{code}`")
                for key, value in result.items():
                    print(f"    {key}: {value}")
        print()


if __name__ == "__main__":
    main(sys.argv[1:] or [sys.executable])
