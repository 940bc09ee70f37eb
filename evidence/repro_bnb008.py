"""Reproduce on CPU what BNB008 (unknown-config-option) cites: an unknown keyword of
``BitsAndBytesConfig`` (or key of a dict config) is only logged at INFO ("Unused kwargs") and
ignored; and which extra keys a saved config carries (``to_dict()``).

Not part of the test suite. Run it as ``evidence/repro_bnb007.py`` is run (same harness):

    /tmp/evvenv/bin/python evidence/repro_bnb008.py   >  evidence/repro_bnb008.txt
    /tmp/evvenv4/bin/python evidence/repro_bnb008.py  >> evidence/repro_bnb008.txt
"""

from __future__ import annotations

import inspect

from repro_bnb007 import main

CASES: tuple[tuple[str, str], ...] = (
    (
        "typo-compute-type",
        "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_type=torch.float16)",
    ),
    (
        "control-compute-dtype",
        "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)",
    ),
    ("dict-typo-compute-type", '{"load_in_4bit": True, "bnb_4bit_compute_type": "float16"}'),
    (
        "typo-fp32-offload",
        "BitsAndBytesConfig(load_in_8bit=True, load_in_8bit_fp32_cpu_offload=True)",
    ),
    (
        "typo-skip-modules",
        'BitsAndBytesConfig(load_in_4bit=True, load_in_8bit_skip_modules=["q_proj"])',
    ),
    (
        "control-skip-modules",
        'BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["q_proj"])',
    ),
    ("quant_method", 'BitsAndBytesConfig(load_in_4bit=True, quant_method="bitsandbytes")'),
    (
        "saved-config-dict",
        "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4').to_dict()",
    ),
)


def signature() -> None:
    from transformers import BitsAndBytesConfig

    print(f"BitsAndBytesConfig.__init__{inspect.signature(BitsAndBytesConfig.__init__)}")
    saved = BitsAndBytesConfig(load_in_4bit=True).to_dict()
    print(f"to_dict() keys: {sorted(saved)}")
    method = BitsAndBytesConfig(quant_method="x").quant_method
    print(f"quant_method after quant_method='x': {method!r}")


if __name__ == "__main__":
    main(CASES)
    signature()
