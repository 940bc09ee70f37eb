"""The rule registry. A new rule is one module here, added to ``ALL_RULES``."""

from __future__ import annotations

from bnblint.rules.base import Rule, RuleContext
from bnblint.rules.bnb001_device_map import MissingDeviceMap
from bnblint.rules.bnb002_compute_dtype import MissingComputeDtype

ALL_RULES: tuple[type[Rule], ...] = (MissingDeviceMap, MissingComputeDtype)
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
