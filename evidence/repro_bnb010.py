"""BNB010: does pipeline() pass quantization keywords given to it (not in model_kwargs) on to
the model? Run with a venv holding torch, transformers and bitsandbytes, on a local model
directory with a tokenizer (e.g. a verify stand-in):

    python evidence/repro_bnb010.py /tmp/standin-llama > evidence/repro_bnb010.json
"""

from __future__ import annotations

import json
import sys
import warnings


def main(path: str) -> None:
    import bitsandbytes
    import torch
    import transformers
    from transformers import BitsAndBytesConfig, pipeline

    out: dict[str, object] = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "bitsandbytes": bitsandbytes.__version__,
    }
    cases = {
        "quantization_config=": {"quantization_config": BitsAndBytesConfig(load_in_4bit=True)},
        "load_in_4bit=": {"load_in_4bit": True},
        "model_kwargs": {
            "model_kwargs": {"quantization_config": BitsAndBytesConfig(load_in_4bit=True)}
        },
    }
    for name, kwargs in cases.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pipe = pipeline("text-generation", model=path, device_map="cpu", **kwargs)
                classes = {type(m).__name__ for m in pipe.model.modules()}
                result: dict[str, object] = {
                    "loaded": True,
                    "linear_classes": sorted(c for c in classes if "Linear" in c),
                }
            except Exception as exc:  # the outcome is the finding
                result = {"loaded": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        # torch.jit deprecation warnings say nothing about the case
        result["warnings"] = sorted(
            {str(w.message).splitlines()[0] for w in caught if "jit" not in str(w.message)}
        )
        out[name] = result
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
