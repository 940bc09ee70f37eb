"""BNB007 invalid-config-value: the tables it reads, against transformers. Its cases (which values
are reported, with which fix) are on the rule class, run by test_rule_cases.py."""

from __future__ import annotations

import pytest

from bnblint.rules.options import (
    DTYPE_ALIASES,
    QUANT_STORAGE_NAMES,
    TORCH_DTYPE_NAMES,
    VALID_OPTIONS,
)


def test_alias_table_maps_to_real_dtypes() -> None:
    assert set(DTYPE_ALIASES.values()) <= TORCH_DTYPE_NAMES
    assert set(QUANT_STORAGE_NAMES) <= TORCH_DTYPE_NAMES
    # An alias that is a real torch dtype name would be valid, not a typo to report.
    assert not {a for a, name in DTYPE_ALIASES.items() if a != name} & TORCH_DTYPE_NAMES - {
        "half",
        "float",
    }


def test_against_installed_transformers() -> None:
    """With the ``verify`` extra: the constants and messages match the real class."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    import inspect

    cls = transformers.BitsAndBytesConfig
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    assert tuple(params) == VALID_OPTIONS
    for kwargs, message in [
        ({"load_in_4bit": "True"}, "load_in_4bit must be a boolean"),
        ({"load_in_8bit": True, "llm_int8_threshold": 6}, "llm_int8_threshold must be a float"),
        ({"load_in_4bit": True, "bnb_4bit_compute_dtype": "bf16"}, "has no attribute 'bf16'"),
    ]:
        with pytest.raises((TypeError, AttributeError), match=message):
            cls(**kwargs)
    assert all(isinstance(getattr(torch, n), torch.dtype) for n in DTYPE_ALIASES.values())
