"""Reproduce, on CPU, the transformers/bitsandbytes/peft behaviours behind rules BNB011-BNB017.

BNB011  a custom ``llm_int8_skip_modules`` replaces the default skip list (is lm_head quantized?)
BNB012  how a skip entry is matched against module names (nested vision-language model)
BNB013  ``Trainer`` on a purely quantized model (no adapter)
BNB014  ``quantization_config=`` passed to a tokenizer / config / processor ``from_pretrained``
BNB015  ``torch_dtype=`` versus ``dtype=``
BNB016  peft ``merge_and_unload()`` on a 4-bit / 8-bit base
BNB017  ``pipeline(device=..., device_map=...)``

Usage (each interpreter needs torch, transformers, bitsandbytes, accelerate and pillow, and peft
for the BNB013/BNB016 cases; nothing is downloaded: the models are tiny random checkpoints that
each interpreter saves to a temporary directory):

    python evidence/repro_rules_011_017.py /tmp/venv/bin/python /tmp/evvenv4/bin/python \
        /tmp/evvenv446/bin/python:BNB015 \
        /tmp/evvenv4554/bin/python:BNB015-dtype-plain,BNB015-torch_dtype-plain \
        /tmp/evvenv4560/bin/python:BNB015-dtype-plain,BNB015-torch_dtype-plain \
        > evidence/repro_rules_011_017.txt

(/tmp/evvenv446, /tmp/evvenv4554, /tmp/evvenv4560: transformers 4.46.3, 4.55.4, 4.56.0 with the
same torch, bitsandbytes, accelerate and pillow; no peft.)

``PYTHON:PREFIX[,PREFIX...]`` runs only the cases whose id starts with one of the prefixes under
that interpreter. ``--jobs N`` runs N cases at once (default 2).

Each case runs in a fresh worker process (``PYTHON repro_rules_011_017.py --worker ...``). Its
``setup`` (if any) runs first, outside the capture window; its ``code`` is executed verbatim
(``exec``) with these names bound:

- ``tmp``: a tiny random ``LlamaForCausalLM`` (hidden 64, intermediate 128, 2 layers, 4 heads,
  2 KV heads, vocab 256, untied head) saved in bf16, with a word-level fast tokenizer;
- ``llava``: a tiny random ``LlavaForConditionalGeneration`` (CLIP vision tower: hidden 64,
  2 layers, 32x32 images, patch 8; Llama text model as above with vocab 300) saved in bf16, with a
  ``LlavaProcessor``;
- ``scratch``: an empty temporary directory for this case;
- ``report``: a dict the code fills with the state it measures (printed even if the code raises);
- ``linear_report(model)``: counts of ``Linear4bit`` / ``Linear8bitLt``, the names of the plain
  ``nn.Linear`` modules, the class of the output embedding (``lm_head``),
  ``get_memory_footprint()`` and ``model.hf_quantizer.modules_to_not_convert``;
  ``group_report(model)``: quantized/total linear layers per top-level group of names;
- torch, and from transformers: AutoConfig, AutoModelForCausalLM, AutoProcessor, AutoTokenizer,
  BitsAndBytesConfig, LlavaForConditionalGeneration, Trainer, TrainingArguments, pipeline.

While ``code`` runs, transformers logging is at INFO and the records of the ``transformers``,
``bitsandbytes``, ``accelerate`` and ``peft`` loggers are captured: WARNING and above always,
INFO only when it mentions device/dtype/quantization/adapter terms. Each record is printed as
``LEVEL logger [via EMITTER, at FILE:LINE FUNCTION <- CALLER <- CALLER]: message``: EMITTER is
``logger.warning_once`` when the record came through transformers' ``warning_once`` (else
``logger.<level>``); FILE:LINE is the library line that logged it, followed by its two callers.
Python warnings are captured with ``warnings.catch_warnings(record=True)`` and printed with their
category and the file:line they are attributed to. Identical lines are printed once, prefixed with
``(N times)``. Two kinds of noise are counted, not listed:
``torch.jit.script_method`` deprecation warnings and bitsandbytes' one-off "Failed to load CPU
gemm_4bit_forward from kernels-community" log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CASE_TIMEOUT_S = 400


def c(text: str) -> str:
    """A case's code, written indented in this file."""
    return textwrap.dedent(text).strip("\n")


BNB4 = "BitsAndBytesConfig(load_in_4bit=True)"
LOAD4 = f"model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config={BNB4})\n"
LOAD8 = (
    "model = AutoModelForCausalLM.from_pretrained(\n"
    "    tmp, quantization_config=BitsAndBytesConfig(load_in_8bit=True)\n"
    ")\n"
)


def skip(entries: str, bits: int = 4) -> str:
    return (
        "cfg = BitsAndBytesConfig(\n"
        f"    load_in_{bits}bit=True, llm_int8_skip_modules={entries}\n"
        ")\n"
        "model = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=cfg)\n"
        "report.update(linear_report(model))"
    )


def llava4(entries: str) -> str:
    return (
        f"cfg = BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules={entries})\n"
        "model = LlavaForConditionalGeneration.from_pretrained(llava, quantization_config=cfg)\n"
        "report.update(linear_report(model))\n"
        "report['per_group'] = group_report(model)"
    )


TRAIN = c(
    """
    args = TrainingArguments(output_dir=scratch, report_to=[], use_cpu=True, max_steps=1,
                             per_device_train_batch_size=2, save_strategy='no')
    data = [{'input_ids': [1, 5, 9, 13, 17, 21], 'attention_mask': [1] * 6,
             'labels': [1, 5, 9, 13, 17, 21]} for _ in range(4)]
    trainer = Trainer(model=model, args=args, train_dataset=data)
    report['Trainer(...)'] = 'constructed'
    out = trainer.train()
    report['train()'] = f'ok, training_loss={out.training_loss:.4f}'
    """
)
LORA = c(
    """
    from peft import LoraConfig
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'],
                      task_type='CAUSAL_LM')
    """
)
TRAINABLE = (
    "report['trainable params'] = sum(p.numel() for p in model.parameters() if p.requires_grad)"
)

# BNB016: one 4-bit (or 8-bit) base and one fp32 base from the same bf16 checkpoint; a LoRA adapter
# with random (non-zero) A and B is created on the quantized base and copied to the fp32 base.
MERGE_SETUP = c(
    """
    from peft import (LoraConfig, get_peft_model, get_peft_model_state_dict,
                      set_peft_model_state_dict)
    from peft.utils.integrations import dequantize_bnb_weight
    import bitsandbytes as bnb
    torch.manual_seed(0)
    qcfg = {QCFG}
    lcfg = dict(r=8, lora_alpha=16, target_modules=['q_proj', 'v_proj', 'down_proj'],
                init_lora_weights=False, task_type='CAUSAL_LM')
    ids = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29]])
    q = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=qcfg, dtype=torch.float32)
    qp = get_peft_model(q, LoraConfig(**lcfg))
    adapter = get_peft_model_state_dict(qp)
    f = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
    fp = get_peft_model(f, LoraConfig(**lcfg))
    set_peft_model_state_dict(fp, adapter)
    def W(m):  # the weight as fp32 (dequantized for bitsandbytes layers)
        if isinstance(m, bnb.nn.Linear4bit):
            return dequantize_bnb_weight(m.weight, state=m.weight.quant_state).float()
        if isinstance(m, bnb.nn.Linear8bitLt):
            return dequantize_bnb_weight(m.weight, state=m.state).float()
        return m.weight.detach().float().clone()  # a copy: the merge works in place
    targets = [n for n, m in qp.base_model.model.named_modules()
               if n.split('.')[-1] in ('q_proj', 'v_proj', 'down_proj')]
    mods_q = dict(qp.base_model.model.named_modules())
    mods_f = dict(fp.base_model.model.named_modules())
    delta = {n: mods_f[n].get_delta_weight('default').float() for n in targets}
    wq_base = {n: W(mods_q[n].base_layer) for n in targets}
    wf_base = {n: W(mods_f[n].base_layer) for n in targets}
    with torch.no_grad():
        lq_adapter = qp(ids).logits.float()
        lf_adapter = fp(ids).logits.float()
    def mx(diffs):
        return f"{max(float(d.detach().abs().max()) for d in diffs):.3e}"
    """
)
MERGE_CODE = c(
    """
    merged_q = qp.merge_and_unload()
    merged_f = fp.merge_and_unload()
    mq, mf = dict(merged_q.named_modules()), dict(merged_f.named_modules())
    report['merged class'] = type(merged_q).__name__
    report['merged module types'] = sorted(
        {f"{n.split('.')[-1]}: {type(mq[n]).__name__}" for n in targets})
    report['lora modules left'] = sum('lora' in n for n in mq)
    report['max|W merged q - W merged fp32|'] = mx(W(mq[n]) - W(mf[n]) for n in targets)
    report['max|W base q - W base fp32| (quantization alone)'] = mx(
        wq_base[n] - wf_base[n] for n in targets)
    report['max|W merged q - (W base q + BA)| (re-quantization)'] = mx(
        W(mq[n]) - (wq_base[n] + delta[n]) for n in targets)
    report['max|BA|'] = mx(delta[n] for n in targets)
    report['max|W base fp32|'] = mx(wf_base[n] for n in targets)
    with torch.no_grad():
        lq, lf = merged_q(ids).logits.float(), merged_f(ids).logits.float()
    report['max|logits fp32|'] = mx([lf])
    report['max|logits merged q - unmerged q+adapter|'] = mx([lq - lq_adapter])
    report['max|logits merged q - merged fp32|'] = mx([lq - lf])
    report['max|logits unmerged q+adapter - unmerged fp32+adapter|'] = mx([lq_adapter - lf_adapter])
    report['max|logits merged fp32 - unmerged fp32+adapter|'] = mx([lf - lf_adapter])
    """
)
SAVE_CODE = c(
    """
    import os, json as _json
    from safetensors import safe_open
    merged_q = qp.merge_and_unload()
    merged_q.save_pretrained(scratch)
    report['files'] = {n: os.path.getsize(os.path.join(scratch, n))
                       for n in sorted(os.listdir(scratch))}
    with open(os.path.join(scratch, 'config.json')) as fh:
        saved = _json.load(fh)
    report['config.json quantization_config'] = saved.get('quantization_config')
    report['config.json dtype, torch_dtype'] = (saved.get('dtype'), saved.get('torch_dtype'))
    dt = {}
    with safe_open(os.path.join(scratch, 'model.safetensors'), 'pt') as sf:
        for k in sf.keys():
            d = str(sf.get_slice(k).get_dtype())
            dt[d] = dt.get(d, 0) + 1
        report['layers.0 q_proj tensors'] = sorted(k for k in sf.keys()
                                                   if 'layers.0.self_attn.q_proj' in k)
    report['saved tensor dtypes (count)'] = dt
    ref = os.path.join(scratch, 'fp32')
    fp.merge_and_unload().save_pretrained(ref)
    report['fp32 merged: model.safetensors'] = os.path.getsize(
        os.path.join(ref, 'model.safetensors'))
    back = AutoModelForCausalLM.from_pretrained(scratch)
    report['reloaded'] = linear_report(back)
    with torch.no_grad():
        report['max|logits reloaded - merged q|'] = mx(
            [back(ids).logits.float() - merged_q(ids).logits.float()])
    """
)

DISK_MAP = (
    '{"model.embed_tokens": "cpu", "model.layers": "cpu", "model.norm": "cpu",\n'
    '                            "model.rotary_emb": "cpu", "lm_head": "disk"}'
)
PIPE_STATE = c(
    """
    report['pipe.device'] = str(pipe.device)
    report['param devices'] = sorted({str(p.device) for p in pipe.model.parameters()})
    report['hf_device_map'] = getattr(pipe.model, 'hf_device_map', '<absent>')
    out = pipe('t3 t4', max_new_tokens=2, do_sample=False)
    report['generate'] = repr(out[0]['generated_text'])
    """
)

SOURCE_CODE = c(
    """
    import inspect, os
    def cite(f, words):
        lines, start = inspect.getsourcelines(f)
        path = inspect.getsourcefile(f)
        path = path[path.index('transformers' + os.sep):]
        keep = [f'{start + i}: {line.strip()}' for i, line in enumerate(lines)
                if any(w in line for w in words)]
        return {'function': f'{path}:{start} {f.__qualname__}', 'lines': keep}
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module
        report['matching'] = cite(should_convert_module, ('re.match', 'endswith', 'boundary ='))
        from transformers.integrations.bitsandbytes import replace_with_bnb_linear
        report['caller'] = cite(replace_with_bnb_linear, ('should_convert_module',))
    except ImportError:
        from transformers.integrations.bitsandbytes import _replace_with_bnb_linear
        report['matching'] = cite(_replace_with_bnb_linear, (
            'modules_to_not_convert:', 'key + "."', 'llm_int8_skip_modules',
            'current_key_name_str ='))
    from transformers.quantizers.base import HfQuantizer
    report['skip list'] = cite(HfQuantizer.get_modules_to_not_convert, (
        'skip_modules', 'get_keys_to_not_convert(model)', 'keep_in_fp32_modules)'))
    """
)

Q4 = "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)"
Q8 = "BitsAndBytesConfig(load_in_8bit=True)"
QUANT_KW = f"model_kwargs={{'quantization_config': {BNB4}}}"
PIPE = "pipe = pipeline('text-generation', model=tmp"

CASES: list[tuple[str, str, str]] = [
    # ---- BNB011: a custom skip list replaces the default one
    (
        "BNB011-bf16-reference",
        "",
        "model = AutoModelForCausalLM.from_pretrained(tmp)\nreport.update(linear_report(model))",
    ),
    ("BNB011-4bit-default", "", skip("None")),
    ("BNB011-4bit-down_proj", "", skip('["mlp.down_proj"]')),
    ("BNB011-4bit-down_proj+lm_head", "", skip('["mlp.down_proj", "lm_head"]')),
    ("BNB011-4bit-lm_head", "", skip('["lm_head"]')),
    ("BNB011-4bit-empty-list", "", skip("[]")),
    ("BNB011-8bit-default", "", skip("None", 8)),
    ("BNB011-8bit-down_proj", "", skip('["mlp.down_proj"]', 8)),
    ("BNB011-8bit-down_proj+lm_head", "", skip('["mlp.down_proj", "lm_head"]', 8)),
    # ---- BNB012: how skip entries match nested module names
    ("BNB012-source", "", SOURCE_CODE),
    (
        "BNB012-llava-bf16-reference",
        "",
        "model = LlavaForConditionalGeneration.from_pretrained(llava)\n"
        "report.update(linear_report(model))\nreport['per_group'] = group_report(model)",
    ),
    ("BNB012-llava-default", "", llava4("None")),
    ("BNB012-llava-vision_tower+lm_head", "", llava4('["vision_tower", "lm_head"]')),
    ("BNB012-llava-model.vision_tower+lm_head", "", llava4('["model.vision_tower", "lm_head"]')),
    ("BNB012-llava-multi_modal_projector", "", llava4('["multi_modal_projector"]')),
    ("BNB012-llava-model.vision_tower", "", llava4('["model.vision_tower"]')),
    ("BNB012-llava-layers.0.mlp", "", llava4('["layers.0.mlp"]')),
    ("BNB012-llava-down_proj", "", llava4('["down_proj"]')),
    ("BNB012-llava-mlp.down_proj", "", llava4('["mlp.down_proj"]')),
    ("BNB012-llava-vision_model.encoder", "", llava4('["vision_model.encoder"]')),
    # ---- BNB013: Trainer on a purely quantized model
    (
        "BNB013-trainer-bf16-control",
        "",
        "model = AutoModelForCausalLM.from_pretrained(tmp)\n" + TRAIN,
    ),
    ("BNB013-trainer-4bit", "", LOAD4 + TRAIN),
    ("BNB013-trainer-8bit", "", LOAD8 + TRAIN),
    (
        "BNB013-trainer-4bit-get_peft_model",
        "",
        LOAD4
        + LORA
        + "\nfrom peft import get_peft_model\nmodel = get_peft_model(model, lora)\n"
        + TRAINABLE
        + "\n"
        + TRAIN,
    ),
    (
        "BNB013-trainer-4bit-add_adapter",
        "",
        LOAD4
        + LORA
        + "\nmodel.add_adapter(lora)\n"
        + "report['_hf_peft_config_loaded'] = getattr(model, '_hf_peft_config_loaded', None)\n"
        + TRAINABLE
        + "\n"
        + TRAIN,
    ),
    # ---- BNB014: quantization_config= given to a tokenizer / config / processor
    (
        "BNB014-tokenizer",
        "",
        c(
            f"""
            tok = AutoTokenizer.from_pretrained(tmp, quantization_config={BNB4})
            report['class'] = type(tok).__name__
            q = tok.init_kwargs.get('quantization_config', '<absent>')
            report['init_kwargs[quantization_config]'] = type(q).__name__
            report['hasattr(tok, quantization_config)'] = hasattr(tok, 'quantization_config')
            report['encode'] = tok('t3 t4')['input_ids']
            """
        ),
    ),
    (
        "BNB014-tokenizer-save",
        f"tok = AutoTokenizer.from_pretrained(tmp, quantization_config={BNB4})",
        c(
            """
            import json, os
            tok.save_pretrained(scratch)
            with open(os.path.join(scratch, 'tokenizer_config.json')) as fh:
                saved = json.load(fh)
            report['saved quantization_config'] = saved.get('quantization_config', '<absent>')
            """
        ),
    ),
    (
        "BNB014-tokenizer-load_in_4bit",
        "",
        c(
            """
            tok = AutoTokenizer.from_pretrained(tmp, load_in_4bit=True)
            report['init_kwargs[load_in_4bit]'] = tok.init_kwargs.get('load_in_4bit', '<absent>')
            """
        ),
    ),
    (
        "BNB014-config",
        "",
        c(
            f"""
            cfg = AutoConfig.from_pretrained(tmp, quantization_config={BNB4})
            report['hasattr(cfg, quantization_config)'] = hasattr(cfg, 'quantization_config')
            report['in to_dict()'] = 'quantization_config' in cfg.to_dict()
            cfg, unused = AutoConfig.from_pretrained(
                tmp, quantization_config={BNB4}, return_unused_kwargs=True)
            report['return_unused_kwargs=True: unused'] = sorted(unused)
            """
        ),
    ),
    (
        "BNB014-config-then-model",
        f"cfg = AutoConfig.from_pretrained(tmp, quantization_config={BNB4})",
        "model = AutoModelForCausalLM.from_pretrained(tmp, config=cfg)\n"
        "report.update(linear_report(model))",
    ),
    (
        "BNB014-processor",
        "",
        c(
            f"""
            proc = AutoProcessor.from_pretrained(llava, quantization_config={BNB4})
            report['class'] = type(proc).__name__
            q = proc.tokenizer.init_kwargs.get('quantization_config', '<absent>')
            report['tokenizer.init_kwargs[quantization_config]'] = type(q).__name__
            report['hasattr(proc, quantization_config)'] = hasattr(proc, 'quantization_config')
            report['hasattr(image_processor, quantization_config)'] = hasattr(
                proc.image_processor, 'quantization_config')
            """
        ),
    ),
    # ---- BNB015: torch_dtype= versus dtype=
    (
        "BNB015-torch_dtype-4bit",
        "",
        "model = AutoModelForCausalLM.from_pretrained(\n"
        f"    tmp, quantization_config={BNB4}, torch_dtype=torch.float16\n)\n"
        "report['model.dtype'] = str(model.dtype)\nreport.update(linear_report(model))",
    ),
    (
        "BNB015-dtype-4bit",
        "",
        "model = AutoModelForCausalLM.from_pretrained(\n"
        f"    tmp, quantization_config={BNB4}, dtype=torch.float16\n)\n"
        "report['model.dtype'] = str(model.dtype)\nreport.update(linear_report(model))",
    ),
    (
        "BNB015-torch_dtype-plain",
        "",
        "model = AutoModelForCausalLM.from_pretrained(tmp, torch_dtype=torch.float16)\n"
        "report['model.dtype'] = str(model.dtype)",
    ),
    (
        "BNB015-torch_dtype-concrete-class",
        "",
        "from transformers import LlamaForCausalLM\n"
        "model = LlamaForCausalLM.from_pretrained(\n"
        f"    tmp, quantization_config={BNB4}, torch_dtype=torch.float16\n)\n"
        "report['model.dtype'] = str(model.dtype)",
    ),
    (
        "BNB015-dtype-plain",
        "",
        "model = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float16)\n"
        "report['model.dtype'] = str(model.dtype)",
    ),
    (
        "BNB015-both",
        "",
        "model = AutoModelForCausalLM.from_pretrained(\n"
        f"    tmp, quantization_config={BNB4}, torch_dtype=torch.float16, dtype=torch.bfloat16\n"
        ")\n"
        "report['model.dtype'] = str(model.dtype)",
    ),
    (
        "BNB015-torch_dtype-twice",
        "",
        "for i in range(2):\n"
        "    model = AutoModelForCausalLM.from_pretrained(\n"
        f"        tmp, quantization_config={BNB4}, torch_dtype=torch.float16\n"
        "    )\n"
        "report['model.dtype'] = str(model.dtype)",
    ),
    (
        "BNB015-config.torch_dtype-attribute",
        "model = AutoModelForCausalLM.from_pretrained(tmp)",
        "report['model.config.torch_dtype'] = str(model.config.torch_dtype)",
    ),
    (
        "BNB015-pipeline-torch_dtype",
        "",
        f"{PIPE}, torch_dtype=torch.float16,\n"
        f"                {QUANT_KW})\n"
        "report['model.dtype'] = str(pipe.model.dtype)",
    ),
    (
        "BNB015-pipeline-dtype",
        "",
        f"{PIPE}, dtype=torch.float16,\n"
        f"                {QUANT_KW})\n"
        "report['model.dtype'] = str(pipe.model.dtype)",
    ),
    # ---- BNB016: merge_and_unload on a quantized base
    ("BNB016-merge-4bit", MERGE_SETUP.replace("{QCFG}", Q4), MERGE_CODE),
    ("BNB016-merge-4bit-save", MERGE_SETUP.replace("{QCFG}", Q4), SAVE_CODE),
    ("BNB016-merge-8bit", MERGE_SETUP.replace("{QCFG}", Q8), MERGE_CODE),
    ("BNB016-merge-8bit-save", MERGE_SETUP.replace("{QCFG}", Q8), SAVE_CODE),
    # ---- BNB017: pipeline(device=..., device_map=...)
    (
        "BNB017-device-cpu+device_map-auto",
        "",
        f"{PIPE}, device='cpu', device_map='auto')\n" + PIPE_STATE,
    ),
    (
        "BNB017-device-minus1+device_map-auto",
        "",
        f"{PIPE}, device=-1, device_map='auto')\n" + PIPE_STATE,
    ),
    ("BNB017-device_map-auto-only", "", f"{PIPE}, device_map='auto')\n" + PIPE_STATE),
    ("BNB017-device-cpu-only", "", f"{PIPE}, device='cpu')\n" + PIPE_STATE),
    (
        "BNB017-device-cpu+disk-map",
        "",
        f"{PIPE}, device='cpu',\n"
        f"                device_map={DISK_MAP},\n"
        "                model_kwargs={'offload_folder': scratch})\n" + PIPE_STATE,
    ),
    (
        "BNB017-disk-map-only",
        "",
        f"{PIPE},\n"
        f"                device_map={DISK_MAP},\n"
        "                model_kwargs={'offload_folder': scratch})\n" + PIPE_STATE,
    ),
    (
        "BNB017-device-cpu+device_map-auto-4bit",
        "",
        f"{PIPE}, device='cpu', device_map='auto',\n"
        f"                {QUANT_KW})\n"
        + PIPE_STATE
        + "\nreport.update(linear_report(pipe.model))",
    ),
]

# ---------------------------------------------------------------- worker side (runs in a venv)

RELEVANT_INFO = re.compile(
    r"device|dtype|unused|quantiz|load_in_|deprecat|offload|4-bit|8-bit|adapter|merge|skip"
    r"|not convert",
    re.IGNORECASE,
)
NOISY_INFO = re.compile(
    r"^(loading configuration file|Model config|Generate config|loading weights|loading file"
    r"|Configuration saved|Model weights saved|tokenizer config file saved"
    r"|Special tokens file saved|chat template saved)"
)
IGNORED_WARNINGS = re.compile(r"`torch\.jit\.script_method` is deprecated")
IGNORED_LOGS = re.compile(r"Failed to load CPU gemm_4bit_forward from kernels-community")
HF_LOGGING = os.path.join("transformers", "utils", "logging.py")
STD_LOGGING = os.path.join("logging", "__init__.py")
ONCE = ("warning_once", "info_once", "warning_advice")
CAPTURED_LOGGERS = ("transformers", "bitsandbytes", "accelerate", "peft")
PLUMBING = ("__getattribute__", "__getattr__", "__get__")


def _short(path: str) -> str:
    if "site-packages" in path:
        return path.split("site-packages" + os.sep, 1)[1]
    if path == "<string>":
        return "<case code>"
    return "<worker>" if path == os.path.abspath(__file__) else path


def _fold(lines: list[str]) -> list[str]:
    """Identical lines once each, in first-seen order, with a count when repeated."""
    counts: dict[str, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    return [f"({n} times) {line}" if n > 1 else line for line, n in counts.items()]


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[str] = []
        self.ignored = 0

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if IGNORED_LOGS.search(msg):
            self.ignored += 1
            return
        relevant = RELEVANT_INFO.search(msg) and not NOISY_INFO.search(msg)
        if record.levelno < logging.WARNING and not relevant:
            return
        stack = traceback.extract_stack()[:-1]
        via = f"logger.{record.levelname.lower()}"
        for fr in stack:
            if fr.filename.endswith(HF_LOGGING) and fr.name in ONCE:
                via = f"logger.{fr.name}"
        outside = [
            fr for fr in reversed(stack) if not fr.filename.endswith((HF_LOGGING, STD_LOGGING))
        ]
        # Attribute-access plumbing between a property and its reader is skipped.
        outside = outside[:1] + [fr for fr in outside[1:] if fr.name not in PLUMBING]
        site = " <- ".join(f"{_short(fr.filename)}:{fr.lineno} {fr.name}" for fr in outside[:3])
        self.records.append(f"{record.levelname} {record.name} [via {via}, at {site}]: {msg}")


def _linear_report(model: Any) -> dict[str, Any]:
    import torch

    counts: dict[str, int] = {}
    plain = []
    for name, m in model.named_modules():
        cls = type(m).__name__
        if cls in ("Linear4bit", "Linear8bitLt"):
            counts[cls] = counts.get(cls, 0) + 1
        elif type(m) is torch.nn.Linear:
            plain.append(name)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    quantizer = getattr(model, "hf_quantizer", None)
    skip_list = getattr(quantizer, "modules_to_not_convert", None)
    return {
        "quantized": counts or "none",
        "plain nn.Linear": plain,
        "lm_head": type(head).__name__ if head is not None else None,
        "footprint": model.get_memory_footprint(),
        "modules_to_not_convert": (
            sorted(skip_list) if skip_list is not None else "<no hf_quantizer>"
        ),
    }


def _group_report(model: Any) -> dict[str, str]:
    import torch

    groups: dict[str, tuple[int, int]] = {}
    for name, m in model.named_modules():
        quantized = type(m).__name__ in ("Linear4bit", "Linear8bitLt")
        if quantized or type(m) is torch.nn.Linear:
            parts = name.split(".")
            group = ".".join(parts[:2]) if parts[0] == "model" else parts[0]
            n_q, n = groups.get(group, (0, 0))
            groups[group] = (n_q + quantized, n + 1)
    return {g: f"{a}/{b} quantized" for g, (a, b) in sorted(groups.items())}


def worker(tmp: str, llava: str, setup: str, code: str) -> dict[str, Any]:
    """Run one case in this process (a fresh interpreter) and return what it observed."""
    import torch
    import transformers
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoProcessor,
        AutoTokenizer,
        BitsAndBytesConfig,
        LlavaForConditionalGeneration,
        Trainer,
        TrainingArguments,
        pipeline,
    )

    transformers.logging.set_verbosity_info()
    transformers.logging.disable_progress_bar()
    ns: dict[str, Any] = {
        "tmp": tmp,
        "llava": llava,
        "scratch": tempfile.mkdtemp(),
        "report": {},
        "torch": torch,
        "linear_report": _linear_report,
        "group_report": _group_report,
        "AutoConfig": AutoConfig,
        "AutoModelForCausalLM": AutoModelForCausalLM,
        "AutoProcessor": AutoProcessor,
        "AutoTokenizer": AutoTokenizer,
        "BitsAndBytesConfig": BitsAndBytesConfig,
        "LlavaForConditionalGeneration": LlavaForConditionalGeneration,
        "Trainer": Trainer,
        "TrainingArguments": TrainingArguments,
        "pipeline": pipeline,
    }
    out: dict[str, Any] = {}
    if setup:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(setup, ns)
        except Exception as exc:  # noqa: BLE001 - recorded, not handled
            return {"outcome": f"setup error: {type(exc).__name__}: {_first_line(str(exc))}"}

    cap = _Capture()
    for name in CAPTURED_LOGGERS:
        lg = logging.getLogger(name)
        lg.addHandler(cap)
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exec(code, ns)
            out["outcome"] = "ok"
        except Exception as exc:  # noqa: BLE001 - recorded, not handled
            text = str(exc)
            out["outcome"] = f"{type(exc).__name__}: {_first_line(text)}"
            rest = [line.strip() for line in text.splitlines()[1:] if line.strip()]
            if rest:
                out["outcome (more lines)"] = rest[:6]
            tb = traceback.extract_tb(exc.__traceback__)
            lib = [fr for fr in tb if "site-packages" in fr.filename]
            if lib:
                first, last = lib[0], lib[-1]
                out["raised at"] = f"{_short(last.filename)}:{last.lineno} {last.name}"
                out["from"] = f"{_short(first.filename)}:{first.lineno} {first.name}"
    for name in CAPTURED_LOGGERS:
        logging.getLogger(name).removeHandler(cap)
    shown, ignored = [], 0
    for w in caught:
        if IGNORED_WARNINGS.search(str(w.message)):
            ignored += 1
            continue
        where = f"{_short(w.filename)}:{w.lineno}"
        shown.append(f"{w.category.__name__} [at {where}]: {str(w.message).strip()}")
    out["state"] = ns["report"]
    out["log records"] = _fold(cap.records)
    out["python warnings"] = _fold(shown)
    if ignored or cap.ignored:
        out["ignored noise"] = f"{ignored} jit warnings, {cap.ignored} kernels log lines"
    return out


def build(base: str, llava: str) -> dict[str, str]:
    """Save the tiny random checkpoints (runs in the venv under test)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)

    def tokenizer(n: int, extra: tuple[str, ...] = ()) -> Any:
        vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, n)}}
        for i, t in enumerate(extra):
            vocab[t] = n + i
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        return PreTrainedTokenizerFast(
            tokenizer_object=backend,
            unk_token="<unk>",
            bos_token="<s>",
            eos_token="</s>",
            pad_token="<unk>",
        )

    text = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=256, **text))
    llama.to(torch.bfloat16).save_pretrained(base)
    tokenizer(256).save_pretrained(base)
    built = {"llama": "ok"}
    try:
        from transformers import (
            CLIPImageProcessor,
            CLIPVisionConfig,
            LlavaConfig,
            LlavaForConditionalGeneration,
            LlavaProcessor,
        )

        vision = CLIPVisionConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            projection_dim=64,
        )
        cfg = LlavaConfig(
            vision_config=vision,
            text_config=LlamaConfig(vocab_size=300, **text),
            image_token_index=299,
        )
        LlavaForConditionalGeneration(cfg).to(torch.bfloat16).save_pretrained(llava)
        built["llava"] = "ok"
        image_processor = CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
        LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer(299, extra=("<image>",)),
            patch_size=8,
            vision_feature_select_strategy="default",
            image_token="<image>",
        ).save_pretrained(llava)
        built["llava processor"] = "ok"
    except Exception as exc:  # noqa: BLE001 - recorded, not handled
        built["llava error"] = f"{type(exc).__name__}: {exc}"
    return built


def versions() -> str:
    import platform

    import accelerate
    import bitsandbytes
    import torch
    import transformers

    try:
        import peft

        peft_version = peft.__version__
    except ImportError:
        peft_version = "not installed"
    return (
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"bitsandbytes {bitsandbytes.__version__}, accelerate {accelerate.__version__}, "
        f"peft {peft_version}, Python {platform.python_version()}"
    )


# ---------------------------------------------------------------- driver side


def _fmt(value: object) -> str:
    # Multi-line strings are folded onto one line.
    return json.dumps(value, default=str) if not isinstance(value, str) else " ".join(value.split())


def _print_case(case_id: str, setup: str, code: str, result: dict[str, Any]) -> None:
    print(f"- {case_id}:")
    if setup:
        print("    setup (not captured):")
        print(textwrap.indent(setup.rstrip(), "        "))
    print("    code:")
    print(textwrap.indent(code.rstrip(), "        "))
    for key, value in result.items():
        if key == "state" and isinstance(value, dict):
            print("    state:")
            for k, v in value.items():
                print(f"        {k}: {_fmt(v)}")
        elif isinstance(value, list):
            print(f"    {key}:" + ("" if value else " (none)"))
            for item in value:
                print(f"        - {_fmt(item)}")
        else:
            print(f"    {key}: {_fmt(value)}")


def main(argv: list[str]) -> None:
    jobs = 2
    if "--jobs" in argv:
        i = argv.index("--jobs")
        jobs = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    env = {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PATH": "/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "HOME": tempfile.gettempdir(),
    }
    script = os.path.abspath(__file__)
    for spec in argv or [sys.executable]:
        python, _, only = spec.partition(":")
        prefixes = tuple(p for p in only.split(",") if p)

        def call(*args: str, python: str = python) -> Any:
            proc = subprocess.run(
                [python, script, *args],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=CASE_TIMEOUT_S,
            )
            try:
                return json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                return {"outcome": "worker crashed", "stderr": proc.stderr[-1500:]}

        print(f"## {call('--versions')} (CPU)")
        if prefixes:
            print(f"(only cases starting with {', '.join(prefixes)})")
        with tempfile.TemporaryDirectory() as tmp:
            base, llava = f"{tmp}/llama", f"{tmp}/llava"
            print(f"built: {_fmt(call('--build', base, llava))}")
            cases = [case for case in CASES if not prefixes or case[0].startswith(prefixes)]

            def one(case: tuple[str, str, str], base: str = base, llava: str = llava) -> Any:
                try:
                    return call("--worker", base, llava, case[1], case[2])
                except subprocess.TimeoutExpired:
                    return {"outcome": f"worker timed out after {CASE_TIMEOUT_S} s"}

            with ThreadPoolExecutor(jobs) as pool:
                results = list(pool.map(one, cases))
            for (case_id, setup, code), result in zip(cases, results, strict=True):
                _print_case(case_id, setup, code, result)
        print()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(worker(*sys.argv[2:6]), default=str))
    elif sys.argv[1:2] == ["--build"]:
        print(json.dumps(build(*sys.argv[2:4])))
    elif sys.argv[1:2] == ["--versions"]:
        print(json.dumps(versions()))
    else:
        main(sys.argv[1:])
