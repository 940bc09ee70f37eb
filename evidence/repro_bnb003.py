"""GPU timing for BNB003 (compute-dtype-mismatch): 4-bit prefill for each pair of
``bnb_4bit_compute_dtype`` and load ``dtype``.

The model is the one of ``../shared/evidence/gpu_probe.py``: a randomly initialised 1.1B Llama
(hidden 2048, 22 layers) saved in bfloat16 to a temporary directory; nothing is downloaded.
Prefill = forward pass over an 8x512 batch. Each case is loaded with ``device_map="auto"``; the
whole list of cases runs ROUNDS times (in alternating order) and each round's time is the mean of
5 passes after two warm-up passes of the same shape; the table gives the median over rounds.
A first pass of a new dtype/shape pays one-off costs (the first round shows them when the warm-up
is shorter): ``gpu_probe.py`` warmed up on a 1x16 batch and timed only 3 passes.

Then an overflow check: the input RMSNorm weights of every layer are scaled so that the inputs of
the attention projections exceed float16's maximum (65504); the logits stay finite with bfloat16
compute and are not with float16 compute, on the same bfloat16 model.

Usage on a GPU machine (torch, transformers, accelerate, bitsandbytes):
    python evidence/repro_bnb003.py > evidence/repro_bnb003.txt
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

ROUNDS = int(os.environ.get("ROUNDS", "5"))
F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32
# (compute dtype, load dtype); None = not passed
CASES = [
    (F16, F16),
    (BF16, BF16),
    (BF16, F16),
    (F16, BF16),
    (F32, BF16),
    (F32, F16),
    (F16, None),
    (BF16, None),
    (F16, F32),
    (BF16, F32),
    (F32, F32),
]


def name(dtype: torch.dtype | None) -> str:
    return "absent" if dtype is None else str(dtype).removeprefix("torch.")


def build(path: str) -> None:
    cfg = LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(path)
    del model
    torch.cuda.empty_cache()


def run_case(path: str, compute: torch.dtype, dtype: torch.dtype | None) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=compute
        ),
        "device_map": "auto",
    }
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    layer = model.model.layers[0].mlp.down_proj
    ids = torch.randint(0, 32000, (8, 512), device="cuda")
    with torch.no_grad():
        for _ in range(2):
            out = model(ids)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            out = model(ids)
        torch.cuda.synchronize()
        prefill = (time.perf_counter() - start) / 5
    info = {
        "model_dtype": name(model.dtype),
        "layer": type(layer).__name__,
        "layer_compute_dtype": name(layer.compute_dtype),
        "quant_state_dtype": name(layer.weight.quant_state.dtype),
        "logits_dtype": name(out.logits.dtype),
        "logits_finite": bool(torch.isfinite(out.logits).all()),
        "prefill_s": prefill,
    }
    del model, out
    torch.cuda.empty_cache()
    return info


def overflow(path: str, compute: torch.dtype) -> str:
    model = AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute),
        dtype=torch.bfloat16,
        device_map="auto",
    )
    with torch.no_grad():
        for layer in model.model.layers:
            layer.input_layernorm.weight.mul_(1e5)
        ids = torch.randint(0, 32000, (1, 64), device="cuda")
        q = {}
        proj = model.model.layers[0].self_attn.q_proj
        handle = proj.register_forward_hook(lambda m, i, o: q.update(x=i[0], y=o))
        logits = model(ids).logits
        handle.remove()
    result = (
        f"compute {name(compute)}, dtype bfloat16: max |input of q_proj| "
        f"{q['x'].abs().max().item():.3g}, "
        f"q_proj output finite: {bool(torch.isfinite(q['y']).all())}, "
        f"logits finite: {bool(torch.isfinite(logits).all())}"
    )
    del model
    torch.cuda.empty_cache()
    return result


def main() -> None:
    print(
        f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, "
        f"bitsandbytes {__import__('bitsandbytes').__version__}"
    )
    path = os.path.join(tempfile.mkdtemp(), "llama-1b")
    build(path)
    times: dict[int, list[float]] = {i: [] for i in range(len(CASES))}
    infos: dict[int, dict[str, object]] = {}
    for r in range(ROUNDS):
        order = list(range(len(CASES)))
        if r % 2:
            order.reverse()
        for i in order:
            info = run_case(path, *CASES[i])
            times[i].append(float(info.pop("prefill_s")))  # type: ignore[arg-type]
            infos[i] = info
            print(f"round {r} case {i}: {times[i][-1]:.4f} s", file=sys.stderr, flush=True)
    print()
    print(
        "| compute dtype | load dtype | model dtype | quant_state "
        "| prefill 8x512 (median) | rounds |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for i, (compute, dtype) in enumerate(CASES):
        info = infos[i]
        rounds = ", ".join(f"{t:.4f}" for t in times[i])
        print(
            f"| {name(compute)} | {name(dtype)} | {info['model_dtype']} | "
            f"{info['quant_state_dtype']} | {statistics.median(times[i]):.4f} s | {rounds} |"
        )
    print()
    for i, (compute, dtype) in enumerate(CASES):
        print(f"case {i} compute={name(compute)} dtype={name(dtype)}: {infos[i]}")
    print()
    print("Overflow check (input RMSNorm weights x1e5):")
    for compute in (BF16, F16):
        print(overflow(path, compute))


if __name__ == "__main__":
    main()
