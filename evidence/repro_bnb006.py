"""Reproduce the facts BNB006 (cast-quantized-model) cites.

Dtype casts and device moves on a model loaded with bitsandbytes (4-bit and 8-bit), and the
fix (passing `dtype=` to `from_pretrained` instead). Runs on CPU and on a GPU. Nothing is
downloaded: a tiny random bf16 Llama (hidden 64, 2 layers, vocab 256) is saved to a temporary
directory; every case loads it afresh.

Usage: python evidence/repro_bnb006.py > evidence/repro_bnb006.txt
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
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

warnings.filterwarnings("ignore")
CASE_TIMEOUT_S = 180
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
LOAD = {
    "4-bit": "m = AutoModelForCausalLM.from_pretrained(tmp, "
    "quantization_config=BitsAndBytesConfig(load_in_4bit=True){extra})",
    "8-bit": "m = AutoModelForCausalLM.from_pretrained(tmp, "
    "quantization_config=BitsAndBytesConfig(load_in_8bit=True){extra})",
}
# (mode, extra load arguments, the use)
CASES = [
    ("4-bit", "", "m.half()"),
    ("4-bit", "", "m.float()"),
    ("4-bit", "", "m.to(torch.float16)"),
    ("4-bit", "", "m.to(dtype=torch.float16)"),
    ("4-bit", "", f"m.to({DEVICE!r}, torch.float16)"),
    ("4-bit", "", "m.to(torch.bfloat16)  # the dtype it already has"),
    ("4-bit", "", "m.bfloat16()"),
    ("4-bit", ", dtype=torch.float16", "m.bfloat16()"),
    ("4-bit", "", "m.double()"),
    ("4-bit", "", "m.to('cpu')"),
    ("4-bit", "", f"m.to({DEVICE!r})"),
    ("4-bit", "", "m.cuda()"),
    ("8-bit", "", "m.half()"),
    ("8-bit", "", "m.float()"),
    ("8-bit", "", "m.to(torch.float16)"),
    ("8-bit", "", "m.bfloat16()"),
    ("8-bit", "", "m.to('cpu')"),
    ("8-bit", "", "m.cuda()"),
    # the fix: the dtype passed to the load
    ("4-bit", ", dtype=torch.float16", "pass  # dtype=torch.float16 at load"),
    ("4-bit", ", dtype=torch.float32", "pass  # dtype=torch.float32 at load"),
    ("8-bit", ", dtype=torch.float16", "pass  # dtype=torch.float16 at load"),
]


def describe(m: torch.nn.Module) -> str:
    q = m.model.layers[0].self_attn.q_proj
    norm = m.model.norm.weight
    device = next(m.parameters()).device
    try:
        logits = m(torch.tensor([[1, 2, 3]], device=device)).logits
        forward = f"forward ok, logits {logits.dtype}"
    except Exception as exc:  # noqa: BLE001 - recorded
        forward = f"forward failed: {type(exc).__name__}: {exc}"
    return (
        f"q_proj={type(q).__name__}/{q.weight.dtype}, norm={norm.dtype}, "
        f"embed={m.model.embed_tokens.weight.dtype}, device={device}; {forward}"
    )


def run_case(index: int, tmp: str) -> None:
    """One case, in this (fresh) process: a failed case cannot disturb the next one."""
    mode, extra, use = CASES[index]
    ns = {
        "tmp": tmp,
        "torch": torch,
        "AutoModelForCausalLM": AutoModelForCausalLM,
        "BitsAndBytesConfig": BitsAndBytesConfig,
    }
    load = LOAD[mode].format(extra=extra)
    print(f"## {mode}: {use}\n{load}\n{use}")
    exec(load, ns)
    try:
        exec(use, ns)
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
