"""Which model a site is verified with, and the tiny random stand-ins.

The model is ``--model`` when given, else the call's own model when it is a local directory or
fully in the local Hugging Face cache (looked up offline, never downloaded), else a stand-in: a
few-million-parameter model of the same family built from a config with random weights and
saved in bfloat16, as real checkpoints are. The quantization arguments are what is verified, and
they behave the same on a tiny model of the family; the timings do not carry over in size.

``plan``, ``choose`` and ``in_local_cache`` run in the bnblint process (no torch); ``build`` runs
in the worker.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = 1  # bump when a stand-in's config or files change: cached copies are rebuilt
MARKER = "bnblint-standin.json"  # written last: a directory without it is incomplete

CAUSAL, SEQ2SEQ = "AutoModelForCausalLM", "AutoModelForSeq2SeqLM"
ENCODER_AUTOS = frozenset(
    {
        "AutoModel",
        "AutoModelForSequenceClassification",
        "AutoModelForTokenClassification",
        "AutoModelForMaskedLM",
        "AutoModelForQuestionAnswering",
    }
)
FAMILY_PREFIXES = {"Llama": "llama", "T5": "t5", "Bert": "bert"}
TITLES = {"llama": "Llama", "t5": "T5", "bert": "BERT"}
# The class a pipeline task loads its model with.
TASKS = {
    "text-generation": ("llama", CAUSAL),
    "text2text-generation": ("t5", SEQ2SEQ),
    "summarization": ("t5", SEQ2SEQ),
    "translation": ("t5", SEQ2SEQ),
    "feature-extraction": ("bert", "AutoModel"),
    "text-classification": ("bert", "AutoModelForSequenceClassification"),
    "sentiment-analysis": ("bert", "AutoModelForSequenceClassification"),
    "fill-mask": ("bert", "AutoModelForMaskedLM"),
    "token-classification": ("bert", "AutoModelForTokenClassification"),
    "ner": ("bert", "AutoModelForTokenClassification"),
    "question-answering": ("bert", "AutoModelForQuestionAnswering"),
}
# Every out_features must be a multiple of 32: bitsandbytes' CPU 4-bit kernel repacks weights
# in blocks of 32 rows and asserts on anything else (an intermediate size of 688 failed).
DIMENSIONS: dict[str, dict[str, Any]] = {
    "llama": dict(
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1024,
        max_position_embeddings=1024,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    ),
    "t5": dict(
        vocab_size=1024,
        d_model=256,
        d_kv=64,
        d_ff=768,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=3,
        decoder_start_token_id=0,
    ),
    "bert": dict(
        vocab_size=1024,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=768,
        max_position_embeddings=512,
        pad_token_id=0,
    ),
}
SPECIAL_TOKENS = {
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "bos_token": "<s>",
    "eos_token": "</s>",
}
MASK_TOKEN = "<mask>"


@dataclass(frozen=True)
class Plan:
    """A stand-in for one site: its family, the class saved, the class it is loaded with."""

    family: str
    build_class: str  # instantiated from the config (an Auto class via ``from_config``)
    load_class: str | None  # None for pipelines: the task picks the class
    note: str | None = None

    @property
    def key(self) -> str:
        return f"{self.family}-{self.build_class}-v{VERSION}"


def plan(api: str, class_name: str | None, task: str | None) -> Plan | None:
    """The stand-in for a load with this class (or pipeline task); None when there is none."""
    if api == "pipeline":
        if task is None:
            return None
        # "translation_en_to_fr" and the like are translation pipelines.
        found = TASKS.get("translation" if task.startswith("translation") else task)
        return Plan(found[0], found[1], None) if found else None
    if class_name is None:
        return None
    for prefix, family in FAMILY_PREFIXES.items():
        if class_name.startswith(prefix):
            return Plan(family, class_name, class_name)
    if class_name == CAUSAL:
        return Plan("llama", CAUSAL, CAUSAL)
    if class_name == SEQ2SEQ:
        return Plan("t5", SEQ2SEQ, SEQ2SEQ)
    if class_name in ENCODER_AUTOS:
        return Plan("bert", class_name, class_name)
    if class_name.endswith("ForCausalLM"):
        # A Llama checkpoint in another causal LM's class would load with mismatched weights;
        # the Auto class loads it as what it is, and the quantization arguments are the same.
        note = f"loaded with {CAUSAL} in place of {class_name}"
        return Plan("llama", CAUSAL, CAUSAL, note)
    return None


@dataclass
class ModelChoice:
    """The model a site is verified with."""

    source: str  # "option" (--model), "local" (a directory), "cache" (HF cache), "stand-in"
    path: str | None  # what the worker loads: a directory or a cached repo id
    reason: str  # why this model: shown in the report
    plan: Plan | None = None  # for a stand-in
    load_class: str | None = None  # the class to load with (None: the call's own)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            "reason": self.reason,
            "stand_in": self.plan.key if self.plan else None,
        }


def choose(
    api: str,
    class_name: str | None,
    task: str | None,
    model_id: str | None,
    revision: str | None,
    option: str | None,
) -> ModelChoice | str:
    """The model to verify a site with, or why there is none."""
    if option is not None:
        return ModelChoice("option", option, f"--model {option}")
    if model_id is not None:
        if os.path.isdir(model_id):
            return ModelChoice("local", model_id, f"{model_id} (a local directory)")
        if in_local_cache(model_id, revision):
            return ModelChoice("cache", model_id, f"{model_id} (from the local Hugging Face cache)")
        why = f"{model_id} is not available offline"
    elif api == "pipeline" and task is not None:
        why = "the pipeline loads its task's default model"
    else:
        why = "the model id is not statically known"
    found = plan(api, class_name, task)
    if found is None:
        what = f"task `{task}`" if api == "pipeline" else f"`{class_name or 'this class'}`"
        return f"no stand-in model for {what} and {why}: pass --model"
    return ModelChoice("stand-in", None, why, found, found.load_class)


def in_local_cache(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> bool:
    """Whether the repo's config and every weight file are in the local Hugging Face cache
    (``cache_dir``: that cache instead of the default)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        config = try_to_load_from_cache(
            repo_id, "config.json", cache_dir=cache_dir, revision=revision
        )
    except Exception:  # an invalid repo id is simply not cached
        return False
    if not isinstance(config, str):
        return False
    snapshot = Path(config).parent
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (snapshot / index).is_file():
            try:
                shards = set(json.loads((snapshot / index).read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, AttributeError):
                return False
            return all((snapshot / s).is_file() for s in shards)
    return any((snapshot / n).is_file() for n in ("model.safetensors", "pytorch_model.bin"))


def describe(info: dict[str, Any]) -> str:
    return f"tiny random {TITLES[info['family']]} ({info['params'] / 1e6:.1f}M params)"


# -- building (in the worker) ----------------------------------------------------------------


def ensure(plan_json: dict[str, str], root: str) -> dict[str, Any]:
    """The stand-in's directory and facts, building it unless a complete copy is there."""
    directory = Path(root) / plan_json["key"]
    marker = directory / MARKER
    if marker.is_file():
        try:
            info = json.loads(marker.read_text())
            return {**info, "path": str(directory), "built": False}
        except ValueError:
            pass
    Path(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(root) / f".{plan_json['key']}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    info = build(plan_json["family"], plan_json["build_class"], tmp)
    (tmp / MARKER).write_text(json.dumps(info))
    shutil.rmtree(directory, ignore_errors=True)
    try:
        os.replace(tmp, directory)
    except OSError:
        if not marker.is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another run finished the same stand-in first
    return {**info, "path": str(directory), "built": True}


def build(family: str, build_class: str, directory: Path) -> dict[str, Any]:
    """Save a tiny random model of ``family`` as ``build_class``, with a tokenizer."""
    import torch
    import transformers

    config_class = {
        "llama": transformers.LlamaConfig,
        "t5": transformers.T5Config,
        "bert": transformers.BertConfig,
    }[family]
    config = config_class(**DIMENSIONS[family])
    cls = getattr(transformers, build_class)
    torch.manual_seed(0)  # the same weights every time
    model = cls.from_config(config) if build_class.startswith("Auto") else cls(config)
    model = model.to(torch.bfloat16)  # real checkpoints are bf16; so are the load's defaults
    model.save_pretrained(directory)
    _tokenizer(DIMENSIONS[family]["vocab_size"]).save_pretrained(directory)
    params = sum(p.numel() for p in model.parameters())
    return {"family": family, "class": type(model).__name__, "params": params}


def _tokenizer(size: int) -> Any:
    """A word-level tokenizer over made-up words: pipelines need one, and it cannot be
    downloaded."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [*SPECIAL_TOKENS.values(), MASK_TOKEN]
    vocab = {token: i for i, token in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), size)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, mask_token=MASK_TOKEN, **SPECIAL_TOKENS
    )
