"""Reproduce the facts BNB005 (offload-without-fp32-flag) cites.

A `device_map` dict that sends modules to "cpu" or "disk" next to other devices, with a
bitsandbytes config that does not set `llm_int8_enable_fp32_cpu_offload=True`.

Runs on CPU (the check that raises runs before any device is touched) and on a GPU, where the
cases with the flag also load and run a forward pass. Nothing is downloaded: a tiny random bf16
Llama (hidden 64, 2 layers, vocab 256) is saved to a temporary directory.

Usage: python evidence/repro_bnb005.py > evidence/repro_bnb005.txt
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import traceback
import warnings

import bitsandbytes
import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    BitsAndBytesConfig,
    LlamaConfig,
    LlamaForCausalLM,
    pipeline,
)

warnings.filterwarnings("ignore")
CASE_TIMEOUT_S = 180
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

BODY = '"model.embed_tokens": 0, "model.norm": 0, "model.rotary_emb": 0, "lm_head": 0'
# layer 1 offloaded, everything else on GPU 0
MIXED = "{" + BODY + ', "model.layers.0": 0, "model.layers.1": "cpu"}'
MIXED_CUDA_STR = MIXED.replace(": 0", ': "cuda:0"')
MIXED_DISK = MIXED.replace('"model.layers.1": "cpu"', '"model.layers.1": "disk"')
CPU_AND_DISK = (
    '{"model.embed_tokens": "cpu", "model.layers": "cpu", "model.norm": "cpu", '
    '"model.rotary_emb": "cpu", "lm_head": "disk"}'
)
ALL_CPU = (
    '{"model.embed_tokens": "cpu", "model.layers": "cpu", "model.norm": "cpu", '
    '"model.rotary_emb": "cpu", "lm_head": "cpu"}'
)

CASES = [
    (
        "4-bit, int GPU + cpu, no flag",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_4bit=True), device_map={MIXED})",
    ),
    (
        "4-bit, 'cuda:0' + cpu, no flag",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_4bit=True), device_map={MIXED_CUDA_STR})",
    ),
    (
        "8-bit, int GPU + disk, no flag",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_8bit=True), device_map={MIXED_DISK}, offload_folder=tmp + '/off')",
    ),
    (
        "4-bit, cpu + disk (no GPU entry), no flag",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_4bit=True), device_map={CPU_AND_DISK}, offload_folder=tmp + '/off')",
    ),
    (
        "4-bit, all cpu, no flag",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_4bit=True), device_map={ALL_CPU})",
    ),
    (
        "4-bit, int GPU + cpu, flag explicitly False",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=False), device_map={MIXED})",
    ),
    (
        "4-bit dict config, int GPU + cpu, no flag",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config="
        f"{{'load_in_4bit': True}}, device_map={MIXED})",
    ),
    (
        "4-bit, int GPU + cpu, flag True (the fix)",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=True), device_map={MIXED})",
    ),
    (
        "8-bit, int GPU + cpu, flag True (the fix)",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=True), device_map={MIXED})",
    ),
    (
        "4-bit dict config, int GPU + cpu, flag True (the fix)",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config="
        f"{{'load_in_4bit': True, 'llm_int8_enable_fp32_cpu_offload': True}}, device_map={MIXED})",
    ),
    (
        "4-bit, everything on disk, no flag",
        "m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        "load_in_4bit=True), device_map={'': 'disk'}, offload_folder=tmp + '/off')",
    ),
    (
        "4-bit, everything on cpu as {'': 'cpu'}, no flag",
        "m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        "load_in_4bit=True), device_map={'': 'cpu'})",
    ),
    (
        "4-bit, cpu + disk (no GPU entry), flag True",
        f"m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        f"load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=True), device_map={CPU_AND_DISK}, "
        f"offload_folder=tmp + '/off')",
    ),
    (
        "4-bit, everything on disk, flag True",
        "m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=BitsAndBytesConfig("
        "load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=True), device_map={'': 'disk'}, "
        "offload_folder=tmp + '/off')",
    ),
    (
        "8-bit through pipeline(model_kwargs=...), int GPU + cpu, no flag",
        "m = pipeline('text-generation', model=tmp, model_kwargs={'quantization_config': "
        f"BitsAndBytesConfig(load_in_8bit=True), 'device_map': {MIXED}}})",
    ),
]


def describe(m: torch.nn.Module) -> str:
    layers = m.model.layers
    parts = []
    for i, layer in enumerate(layers):
        q = layer.self_attn.q_proj
        w = q.weight
        parts.append(f"layers.{i}.q_proj={type(q).__name__}/{w.dtype}/{w.device}")
    x = torch.tensor([[1, 2, 3]], device=m.model.embed_tokens.weight.device)
    try:
        out = m(x).logits
        parts.append(f"forward ok, logits {out.dtype}")
    except Exception as exc:  # noqa: BLE001 - recorded
        parts.append(f"forward failed: {type(exc).__name__}: {exc}")
    return "; ".join(parts)


def run_case(index: int, tmp: str) -> None:
    """One case, in this (fresh) process: a failed case cannot disturb the next one."""
    title, code = CASES[index]
    ns = {
        "tmp": tmp,
        "torch": torch,
        "AutoModelForCausalLM": AutoModelForCausalLM,
        "BitsAndBytesConfig": BitsAndBytesConfig,
        "pipeline": pipeline,
    }
    print(f"## {title}\n{code}")
    try:
        exec(code, ns)
        print(f"-> OK: {describe(ns['m'])}")
    except Exception as exc:  # noqa: BLE001 - recorded
        report(exc)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--case":
        run_case(int(sys.argv[2]), sys.argv[3])
        return
    # --only 3,4: run these cases (0-based) only
    only = [int(i) for i in sys.argv[2].split(",")] if sys.argv[1:2] == ["--only"] else None
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, bitsandbytes {bitsandbytes.__version__}, "
        f"cuda available: {torch.cuda.is_available()}"
        + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
    )
    print("model: tiny random LlamaForCausalLM (hidden 64, 2 layers, vocab 256) saved in bf16;")
    print("each case runs in a fresh process")
    print(flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        config = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=256,
        )
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(tmp)
        for index in range(len(CASES)) if only is None else only:
            try:
                proc = subprocess.run(
                    [sys.executable, __file__, "--case", str(index), tmp],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=CASE_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired as exc:
                out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
                print(out + f"-> (case process killed after {CASE_TIMEOUT_S} s)", flush=True)
                print(flush=True)
                continue
            print(proc.stdout, end="")
            if proc.returncode != 0:
                print(f"-> process exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
            print(flush=True)


def report(exc: Exception) -> None:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    where = frame.filename.split("site-packages/")[-1]
    print(f"-> {type(exc).__name__}: {exc}".rstrip())
    print(f"   raised at {where}:{frame.lineno} in {frame.name}")


if __name__ == "__main__":
    main()
