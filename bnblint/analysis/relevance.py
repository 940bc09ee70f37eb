"""Which function bodies can add to the analysis model, decided on the stdlib AST.

Walking a body with the builder (an abstract interpreter) costs far more than reading the
identifiers it mentions (one pass over the same ``ast`` tree). A function that
mentions no load, no bitsandbytes config, no quantization keyword and no module-level name bound
to a model, config or kwargs dict cannot create a load site, a config or a model use, so its
body is not walked. Measured on transformers' ``utils/quantization_config.py`` (2,100 lines,
dozens of methods): most of the builder's time went to such bodies.
"""

from __future__ import annotations

import ast

from bnblint.analysis.syntax import child_nodes

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
# The fields of a statement that hold statements (or handlers and cases, which hold them).
_BLOCKS = ("body", "orelse", "handlers", "finalbody", "cases")


class FunctionIndex:
    """Identifiers and string constants each function mentions, its nested functions included."""

    def __init__(self, tree: ast.Module) -> None:
        self.mentions: dict[Path, set[str]] = {}
        self._statements(tree.body, ())

    def _statements(self, body: list[ast.stmt], path: Path) -> None:
        """Outside functions nothing is collected: find the definitions, which only statement
        lists hold."""
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._function(stmt, path)
            elif isinstance(stmt, ast.ClassDef):
                self._statements(stmt.body, (*path, stmt.name))
            else:
                for name in _BLOCKS:
                    inner = getattr(stmt, name, None)
                    if isinstance(inner, list):
                        for item in inner:
                            if isinstance(item, ast.stmt):
                                self._statements([item], path)
                            else:  # an except handler, a match case
                                self._statements(getattr(item, "body", []), path)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, path: Path) -> set[str]:
        """The words of a function (its decorators, parameters and body), recorded under its
        path; returned with its name so the enclosing function's words include them."""
        inner = (*path, node.name)
        own = self.mentions.setdefault(inner, set())
        words = self._words(node, inner)
        words.add(node.name)
        own |= words
        return words

    def _words(self, node: ast.AST, path: Path) -> set[str]:
        words: set[str] = set()
        todo = child_nodes(node)
        while todo:
            child = todo.pop()
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                words |= self._function(child, path)
                continue
            if isinstance(child, ast.ClassDef):
                words |= self._words(child, (*path, child.name))
                continue
            if isinstance(child, ast.Name):
                words.add(child.id)
            elif isinstance(child, ast.Attribute):
                words.add(child.attr)
            elif isinstance(child, ast.Constant) and isinstance(child.value, str):
                words.add(child.value)
            elif isinstance(child, ast.keyword) and child.arg is not None:
                words.add(child.arg)
            todo.extend(child_nodes(child))
        return words

    def may_matter(self, path: Path, names: frozenset[str]) -> bool:
        words = self.mentions.get(path)
        if words is None:
            return True  # not found (the trees disagree): walk it, to be safe
        return not words.isdisjoint(RELEVANT_WORDS) or not words.isdisjoint(names)
