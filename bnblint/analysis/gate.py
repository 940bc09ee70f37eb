"""The cheap gates in front of the analysis: which files can matter to the selected rules.

First the bytes (a rule's word or a load word must occur), then the stdlib AST (a call that can
carry quantization must exist). Both run on every file of a run, so neither imports LibCST.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from bnblint.parse import parse_ast
from bnblint.project import EXTERNAL_ROOTS

if TYPE_CHECKING:
    from bnblint.rules import Rule

# A load can get its quantization from another module (a config, a kwargs dict, a helper), so a
# file with a load is worth the stdlib-AST gate even when it names no bitsandbytes word.
LOAD_WORDS = (b"from_pretrained", b"model_init_kwargs")


def words_for(rules: Sequence[type[Rule]]) -> tuple[bytes, ...]:
    return _words(tuple(rules))


@lru_cache(maxsize=64)
def _words(rules: tuple[type[Rule], ...]) -> tuple[bytes, ...]:
    if not rules:
        return ()
    return tuple(sorted({w for rule in rules for w in rule.words} | set(LOAD_WORDS)))


def may_matter(data: bytes, rules: Sequence[type[Rule]]) -> bool:
    """Byte prefilter: can any selected rule fire in a file with these bytes?"""
    return any(word in data for word in words_for(rules))


def can_fire(text: str, rules: Sequence[type[Rule]]) -> bool:
    """The byte prefilter, on text (stdin, editors, documents)."""
    return bool(rules) and any(w.decode() in text for w in words_for(rules))


def only_load_words(text: str, rules: Sequence[type[Rule]]) -> bool:
    """Whether only the load words passed the prefilter (no rule's own word is in the text)."""
    return not any(w.decode() in text for w in rule_words(rules))


def rule_words(rules: Sequence[type[Rule]]) -> tuple[bytes, ...]:
    """The rules' own words, without the load words."""
    return _rule_words(tuple(rules))


@lru_cache(maxsize=64)
def _rule_words(rules: tuple[type[Rule], ...]) -> tuple[bytes, ...]:
    return tuple(sorted({w for rule in rules for w in rule.words}))


def has_candidate_call(text: str) -> bool:
    return candidate_tree(text)[0]


def candidate_tree(text: str, imported_only: bool = False) -> tuple[bool, ast.Module | None]:
    """Cheap second filter: does the module call a load or a config that can matter? Also
    returns the stdlib AST, which the analysis reuses to skip function bodies.

    The stdlib parser is about 15x faster than LibCST's, and most files that mention a
    bitsandbytes word only do so in docstrings, comments, definitions or calls that cannot
    carry quantization. A candidate is a load (``X.from_pretrained``, ``pipeline``) with some
    keyword or ``**`` argument, on a receiver that is not a tokenizer, processor or config by
    name, or a ``BitsAndBytesConfig`` call with arguments (an argument-less one only matters
    where it reaches a load). On the installed transformers package: 8 files pass the byte
    filter, 1 has a candidate. Unparsable text passes, so that LibCST reports the error.

    ``imported_only``: the file names no bitsandbytes word, so a load can only be quantized by
    what it gets from another module: a keyword value or ``**splat`` that mentions an imported
    name (or ``**self.<attr>``, set in a base class). Keeps the thousands of ``**kwargs``
    forwarding loads of a library out of the analysis.
    """
    try:
        tree = parse_ast(text)
    except (SyntaxError, ValueError):
        return True, None
    configs, pipelines = {"BitsAndBytesConfig"}, {"pipeline"}
    calls = []
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.asname and alias.name == "BitsAndBytesConfig":
                    configs.add(alias.asname)
                elif alias.asname and alias.name == "pipeline":
                    pipelines.add(alias.asname)
                if node.level or (node.module or "").split(".")[0] not in EXTERNAL_ROOTS:
                    imported.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in EXTERNAL_ROOTS:
                    imported.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Call):
            calls.append(node)
    if imported_only:
        return any(_uses_import(c, imported) for c in calls), tree
    for call in calls:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in configs and (call.args or call.keywords):
            return True, tree
        if name == "dict" and any(
            k.arg == "type"
            and (
                (isinstance(k.value, ast.Attribute) and k.value.attr == "from_pretrained")
                or getattr(k.value, "id", None) in configs
            )
            for k in call.keywords
        ):
            return True, tree  # an mmengine lazy config (xtuner): a load or a config
        if any(k.arg == "model_init_kwargs" for k in call.keywords):
            return True, tree  # a TRL config: its trainer may load with these keywords
        if not call.keywords:
            continue  # a load without keywords or ** cannot be quantized
        if name == "from_pretrained" and not _non_model(func):
            return True, tree
        if name in pipelines:
            return True, tree
    return False, tree


def _uses_import(call: ast.Call, imported: set[str]) -> bool:
    """A load whose keywords mention an imported name, or that splats ``self.<attr>``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("from_pretrained", "pipeline") or not call.keywords or _non_model(func):
        return False
    for keyword in call.keywords:
        value = keyword.value
        if (
            keyword.arg is None
            and isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and value.value.id == "self"
        ):
            return True
        for node in ast.walk(value):
            if isinstance(node, ast.Name) and node.id in imported:
                return True
    return False


def _non_model(func: ast.expr) -> bool:
    """``AutoTokenizer.from_pretrained``, ``AutoConfig.from_pretrained``: never a model load."""
    from bnblint.analysis.names import NON_MODEL_SUFFIXES

    receiver = func.value if isinstance(func, ast.Attribute) else None
    name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
    return bool(name) and name.endswith(NON_MODEL_SUFFIXES)
