"""One 4-bit forward per device and dtype; run as a script in a child process.

``python _smoke.py cuda:0,cuda:1 bfloat16,float16``. A native crash (a bad kernel image can
abort the process) then costs only this child. Prints one JSON line per attempt. Needs only
the standard library, torch and bitsandbytes.
"""

from __future__ import annotations

import json
import sys
import time
import traceback


def attempt(device: str, dtype_name: str) -> dict[str, object]:
    import bitsandbytes as bnb
    import torch

    dtype = getattr(torch, dtype_name)
    result: dict[str, object] = {"device": device, "dtype": dtype_name, "ok": False}
    start = time.perf_counter()
    try:
        torch.manual_seed(0)
        dense = torch.nn.Linear(256, 64, bias=True)
        layer = bnb.nn.Linear4bit(256, 64, bias=True, compute_dtype=dtype, quant_type="nf4")
        layer.load_state_dict(dense.state_dict())
        layer = layer.to(device)  # quantizes the weight on the device
        weight = layer.weight
        result["weight_dtype"] = str(weight.dtype)
        if weight.dtype != torch.uint8:
            raise RuntimeError(f"weight was not quantized (dtype {weight.dtype})")
        # The reference uses the same quantized weights, so only kernel errors show.
        state = getattr(weight, "quant_state")  # noqa: B009 (set by bitsandbytes at .to())
        ref_w = bnb.functional.dequantize_4bit(weight.data, state).to(dtype)
        bias = layer.bias.to(dtype)
        worst = 0.0
        with torch.no_grad():
            # 3 rows take the matmul path, 1 row the single-token inference (gemv) path.
            for rows in (3, 1):
                x = torch.randn(rows, 256, dtype=dtype, device=device)
                out = layer(x)
                ref = torch.nn.functional.linear(x.float(), ref_w.float(), bias.float())
                if out.shape != ref.shape or out.dtype != dtype:
                    raise RuntimeError(f"output {tuple(out.shape)} {out.dtype}, expected {dtype}")
                if not bool(torch.isfinite(out).all()):
                    raise RuntimeError("output has inf/nan")
                err = ((out.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-6)).item()
                worst = max(worst, err)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        result["rel_error"] = round(worst, 5)
        # bf16/fp16 rounding of a 256-wide dot product stays well under this.
        result["ok"] = worst < 0.05
        if not result["ok"]:
            result["error"] = f"output differs from the dequantized reference by {worst:.3f}"
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}".strip()
        result["traceback"] = traceback.format_exc(limit=3)[-1500:]
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def main() -> None:
    devices = sys.argv[1].split(",")
    dtypes = sys.argv[2].split(",")
    import bitsandbytes  # noqa: F401  # import errors are reported before any attempt

    for device in devices:
        for dtype in dtypes:
            print(json.dumps(attempt(device, dtype)), flush=True)


if __name__ == "__main__":
    main()
