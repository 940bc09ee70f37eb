"""Which function bodies can add to the analysis model, decided on the stdlib AST.

Walking a body with LibCST costs far more than reading the identifiers it mentions with
``ast`` (which the pipeline has already parsed for its candidate-call filter). A function that
mentions no load, no bitsandbytes config, no quantization keyword and no module-level name bound
to a model, config or kwargs dict cannot create a load site, a config or a model use, so its
body is not walked. Measured on transformers' ``utils/quantization_config.py`` (2,100 lines,
dozens of methods): most of the builder's time went to such bodies.
"""

from __future__ import annotations

import ast

# Words whose presence in a body means it may matter by itself.
RELEVANT_WORDS = frozenset(
    {
        "from_pretrained",
        "pipeline",
        "BitsAndBytesConfig",
        "quantization_config",
        "load_in_4bit",
        "load_in_8bit",
    }
)

Path = tuple[str, ...]  # enclosing class and function names, outermost first


class FunctionIndex:
    """Identifiers and string constants each function mentions, its nested functions included."""

    def __init__(self, tree: ast.Module) -> None:
        self.mentions: dict[Path, set[str]] = {}
        self._walk(tree, (), [])

    def _walk(self, node: ast.AST, path: Path, open_sets: list[set[str]]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = (*path, child.name)
                if isinstance(child, ast.ClassDef):
                    self._walk(child, inner, open_sets)
                    continue
                own = self.mentions.setdefault(inner, set())
                own.add(child.name)
                for s in open_sets:
                    s.add(child.name)
                self._walk(child, inner, [*open_sets, own])
                continue
            word = None
            if isinstance(child, ast.Name):
                word = child.id
            elif isinstance(child, ast.Attribute):
                word = child.attr
            elif isinstance(child, ast.Constant) and isinstance(child.value, str):
                word = child.value
            elif isinstance(child, ast.keyword) and child.arg is not None:
                word = child.arg
            if word is not None:
                for s in open_sets:
                    s.add(word)
            self._walk(child, path, open_sets)

    def may_matter(self, path: Path, names: frozenset[str]) -> bool:
        words = self.mentions.get(path)
        if words is None:
            return True  # not found (the trees disagree): walk it, to be safe
        return not words.isdisjoint(RELEVANT_WORDS) or not words.isdisjoint(names)
