"""The rule registry. A new rule is one module here named ``bnbNNN_<topic>.py`` holding one
``Rule`` subclass; it is found by that name, so nothing else needs editing."""

from __future__ import annotations

import importlib
import pkgutil

from bnblint.rules.base import Rule, RuleContext


def _discover() -> tuple[type[Rule], ...]:
    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("bnb"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Rule) and obj.__module__ == module.__name__
        )
    codes = [r.code for r in found]
    duplicates = {c for c in codes if codes.count(c) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate rule codes: {sorted(duplicates)}")
    return tuple(sorted(found, key=lambda r: r.code))


ALL_RULES: tuple[type[Rule], ...] = _discover()
RULES_BY_CODE: dict[str, type[Rule]] = {r.code: r for r in ALL_RULES}


def select_rules(select: list[str], ignore: list[str]) -> list[type[Rule]]:
    """Rules whose code starts with a selected prefix and with no ignored prefix.

    The longest matching prefix wins, as in ruff: ``select=["BNB"], ignore=["BNB0"]`` drops
    all, ``select=["BNB001"], ignore=["BNB"]`` keeps BNB001.
    """

    def longest(code: str, prefixes: list[str]) -> int:
        return max((len(p) for p in prefixes if code.startswith(p)), default=-1)

    chosen = []
    for rule in ALL_RULES:
        s, i = longest(rule.code, select), longest(rule.code, ignore)
        if s >= 0 and s > i:
            chosen.append(rule)
    return chosen


def is_code_prefix(text: str) -> bool:
    return text == "ALL" or any(code.startswith(text) for code in RULES_BY_CODE)


__all__ = ["ALL_RULES", "RULES_BY_CODE", "Rule", "RuleContext", "is_code_prefix", "select_rules"]
