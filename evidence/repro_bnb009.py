"""Reproduce on CPU what BNB009 (ineffective-config-option) cites: options that change nothing
for the chosen mode (identical quantized layers and identical logits), options that do apply,
and ``BitsAndBytesConfig()`` with neither flag quantizing to 4-bit.

Not part of the test suite. Run it as ``evidence/repro_bnb007.py`` is run (same harness):

    /tmp/evvenv/bin/python evidence/repro_bnb009.py   >  evidence/repro_bnb009.txt
    /tmp/evvenv4/bin/python evidence/repro_bnb009.py  >> evidence/repro_bnb009.txt

Each pair loads the same tiny checkpoint with a reference config and with the option under test,
then compares the first quantized layer and the logits of one forward pass.
"""

from __future__ import annotations

import warnings

from repro_bnb007 import checkpoint, describe, versions

PAIRS: tuple[tuple[str, str, str], ...] = (
    (
        "8bit-with-4bit-options",
        "BitsAndBytesConfig(load_in_8bit=True)",
        "BitsAndBytesConfig(load_in_8bit=True, bnb_4bit_compute_dtype=torch.float16, "
        'bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)',
    ),
    (
        "4bit-with-int8-threshold",
        "BitsAndBytesConfig(load_in_4bit=True)",
        "BitsAndBytesConfig(load_in_4bit=True, llm_int8_threshold=1.0)",
    ),
    (
        "4bit-with-int8-fp16-weight",
        "BitsAndBytesConfig(load_in_4bit=True)",
        "BitsAndBytesConfig(load_in_4bit=True, llm_int8_has_fp16_weight=True)",
    ),
    (
        "4bit-with-skip-modules (applies)",
        "BitsAndBytesConfig(load_in_4bit=True)",
        'BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["q_proj", "lm_head"])',
    ),
    (
        "8bit-threshold (applies)",
        "BitsAndBytesConfig(load_in_8bit=True)",
        "BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=1.0)",
    ),
    ("no-flag", "BitsAndBytesConfig(load_in_4bit=True)", "BitsAndBytesConfig()"),
    (
        "load_in_4bit=False",
        "BitsAndBytesConfig(load_in_4bit=True)",
        "BitsAndBytesConfig(load_in_4bit=False)",
    ),
    (
        "load_in_8bit=False",
        "BitsAndBytesConfig(load_in_4bit=True)",
        "BitsAndBytesConfig(load_in_8bit=False)",
    ),
)


def load(expression: str, tmp: str):  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    config = eval(expression, {"torch": torch, "BitsAndBytesConfig": BitsAndBytesConfig})
    model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=config)
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4, 5]])).logits
    return model, logits


def save_and_reload(expression: str, tmp: str) -> str:
    """Quantize with ``expression``, save_pretrained, then from_pretrained the saved copy."""
    import json
    import tempfile

    from transformers import AutoModelForCausalLM

    model, _ = load(expression, tmp)
    out = tempfile.mkdtemp()
    model.save_pretrained(out)
    with open(f"{out}/config.json", encoding="utf-8") as f:
        saved = json.load(f)["quantization_config"]
    flags = {k: saved.get(k) for k in ("load_in_4bit", "load_in_8bit")}
    try:
        reloaded = AutoModelForCausalLM.from_pretrained(out)
        result = f"reload ok: {describe(reloaded)}"
    except Exception as e:  # noqa: BLE001 - the exception is the fact being recorded
        result = f"reload fails: {type(e).__name__}: {str(e).splitlines()[0]}"
    return f"saved config.json flags {flags}; {result}"


def main() -> None:
    import torch

    print(f"== {versions()}")
    tmp = checkpoint()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case_id, reference, tested in PAIRS:
            ref_model, ref_logits = load(reference, tmp)
            model, logits = load(tested, tmp)
            same = torch.equal(ref_logits, logits)
            print(f"[{case_id}]")
            print(f"  reference: {reference}\n    {describe(ref_model)}")
            print(f"  tested:    {tested}\n    {describe(model)}")
            print(f"  logits identical: {same}")
        for expression in ("BitsAndBytesConfig()", "BitsAndBytesConfig(load_in_4bit=True)"):
            print(f"[save and reload] {expression}")
            print(f"  {save_and_reload(expression, tmp)}")
    print()


if __name__ == "__main__":
    main()
