from __future__ import annotations

from collections.abc import Iterator

from bnblint.analysis.model import MODE_LABELS, LoadSite, ModuleModel
from bnblint.diagnostics import AddKeyword, Applicability, Diagnostic, Fix, Level
from bnblint.rules.base import Case, Rule, RuleContext


class MissingDeviceMap(Rule):
    code = "BNB001"
    name = "missing-device-map"
    summary = "bitsandbytes load without `device_map`"
    level = Level.WARNING
    words = (b"BitsAndBytesConfig", b"load_in_4bit", b"load_in_8bit")
    docs = """
## What it does
Finds model loads quantized with bitsandbytes (4-bit or 8-bit, statically known) that pass no
`device_map` (for `pipeline`, neither `device_map` nor `device`).

## Why is this bad?
Without a `device_map`, transformers sets `{"": <current device>}`: the whole quantized model is
placed on one device, whatever the number of GPUs, and this is logged at INFO level only.
`device_map="auto"` lets accelerate spread the layers over every visible GPU (and the CPU), and a
model that does not fit fails with a clear error instead of an out-of-memory in the middle of
loading. In a distributed-training script (one process per GPU: `Trainer`, `SFTTrainer`,
`Accelerator`, `torch.distributed`, DeepSpeed, FSDP, `LOCAL_RANK`), `"auto"` is wrong: each process
must load its copy onto its own GPU, with `device_map={"": PartialState().local_process_index}`.
There the rule reports without a fix. A config that sets `bnb_4bit_quant_storage` is the
FSDP-QLoRA recipe (bitsandbytes 0.50 docs, "FSDP-QLoRA"): the model is loaded without a
`device_map` and FSDP shards it, so the rule stays silent.

## Example
```python
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=BitsAndBytesConfig(load_in_4bit=True),
)
```

## Use instead
```python
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

model = AutoModelForCausalLM.from_pretrained(
    "meta-llama/Llama-3.1-8B-Instruct",
    quantization_config=BitsAndBytesConfig(load_in_4bit=True),
    device_map="auto",
)
```

## Fix safety
Safe: adds `device_map="auto"` to the load. On a machine with one GPU the model lands on the same
device as before; with several GPUs it is spread over them, which is what the argument is for.
No fix is offered in distributed-training files.

## Evidence
- transformers 5.17, bitsandbytes 0.50.2, H100: with no `device_map` the whole model was put on
  `cuda:0` (the 4-bit quantizer's `update_device_map` picks the current device); it did not fall
  back to the CPU (`evidence/gpu/README.md`, H100 run 2026-11-27).
- transformers 4.57.1 and 5.24.0 on CPU: both set `{"": current device}` and log only at INFO:
  "The device_map was not initialized. Setting device_map to {...}".
- Missing `device_map` does not cause "invalid device function" / "no kernel image is available":
  those come from a bitsandbytes build without kernels for the GPU (see `bnblint doctor`).
"""

    fixable = "sometimes"
    valid = (
        """
        from transformers import AutoModel, BitsAndBytesConfig
        cfg = BitsAndBytesConfig(load_in_4bit=True)
        m = AutoModel.from_pretrained("m", quantization_config=cfg, device_map="auto")
        """,
        Case(
            """
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_storage="bfloat16")
            m = AutoModel.from_pretrained("m", quantization_config=cfg)
            """,
            note="the FSDP-QLoRA recipe: FSDP shards the model",
        ),
    )
    invalid = (
        Case(
            """
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True)
            m = AutoModel.from_pretrained("m", quantization_config=cfg)
            """,
            at=(3, 5),
            message="4-bit bitsandbytes load without `device_map`",
            fixed="""
            from transformers import AutoModel, BitsAndBytesConfig
            cfg = BitsAndBytesConfig(load_in_4bit=True)
            m = AutoModel.from_pretrained("m", quantization_config=cfg, device_map="auto")
            """,
        ),
        Case(
            """
            import os
            from transformers import AutoModel, BitsAndBytesConfig
            rank = int(os.environ["LOCAL_RANK"])
            cfg = BitsAndBytesConfig(load_in_8bit=True)
            m = AutoModel.from_pretrained("m", quantization_config=cfg)
            """,
            at=(5, 5),
            message="distributed-training file",
            note='one process per GPU: "auto" would be wrong, no fix',
        ),
    )

    def check(self, model: ModuleModel, context: RuleContext) -> Iterator[Diagnostic]:
        # One finding per load call: a call reached by a 4-bit and an 8-bit config (one per
        # branch) is one load without a device_map.
        calls: dict[int, list[LoadSite]] = {}
        for site in model.quantized_loads():
            if not site.device_map.absent or site.api == "trl" or site.lazy:
                continue  # TRL, or the runner of a lazy config, places the model itself
            config = site.quantization.config if site.quantization else None
            if config is not None and "bnb_4bit_quant_storage" in config.options.entries:
                continue  # the FSDP-QLoRA recipe: FSDP shards the model, no device_map
            calls.setdefault(id(site.call), []).append(site)
        for sites in calls.values():
            site = sites[0]
            modes: list[str] = []
            for s in sites:
                assert s.quantization is not None
                label = MODE_LABELS.get(s.quantization.mode, "quantized")
                if label not in modes:
                    modes.append(label)
            mode = " or ".join(modes)
            conditional = any(s.quantization and s.quantization.conditional for s in sites)
            when = " (when quantization is enabled)" if conditional else ""
            head = f"{mode} bitsandbytes load without `device_map`{when}: the whole model is put on"
            if model.distributed:
                message = (
                    f"{head} the current device; this is a distributed-training file "
                    f"({model.distributed}), so pass "
                    '`device_map={"": PartialState().local_process_index}`'
                )
                yield Diagnostic(self.code, message, site.call, site, related=tuple(sites))
                continue
            message = f'{head} one device; pass `device_map="auto"` to spread it over all GPUs'
            fix = None
            if not (any(s.via for s in sites) and any(kw.arg is None for kw in site.call.keywords)):
                # Reached through a caller's keywords, the call serves other callers too, and
                # one of them may pass device_map in the splat: the keyword would then be a
                # TypeError (multiple values). No fix there.
                fix = Fix(
                    'Add `device_map="auto"`',
                    Applicability.SAFE,
                    (AddKeyword(site.call, "device_map", '"auto"'),),
                )
            yield Diagnostic(self.code, message, site.call, site, fix, related=tuple(sites))
