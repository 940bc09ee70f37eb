"""Properties of fixes over generated load scripts: they parse, are idempotent, leave nothing
fixable behind, and change no line outside the edited calls (plus one added import)."""

from __future__ import annotations

import ast
import difflib

from hypothesis import given, settings
from hypothesis import strategies as st

from bnblint.pipeline import lint_text
from bnblint.settings import Settings


def render_call(func: str, args: list[str], style: str, indent: str) -> str:
    if style == "flat":
        return f"{func}({', '.join(args)})"
    inner = indent + "    "
    if style == "hanging":
        pad = " " * (len(indent) + len(func) + 1)
        return f"{func}({(',' + chr(10) + pad).join(args)})"
    trailing = "," if style == "multiline_trailing" else ""
    body = ("," + "\n").join(inner + a for a in args)
    return f"{func}(\n{body}{trailing}\n{indent})"


STYLES = st.sampled_from(["flat", "hanging", "multiline", "multiline_trailing"])


@st.composite
def scripts(draw: st.DrawFn) -> str:
    torch_import = draw(st.sampled_from(["", "import torch\n", "import torch as th\n"]))
    in_function = draw(st.booleans())
    indent = "    " if in_function else ""
    config_kwargs = ["load_in_4bit=True"] + draw(
        st.lists(
            st.sampled_from(['bnb_4bit_quant_type="nf4"', "bnb_4bit_use_double_quant=True"]),
            unique=True,
        )
    )
    config = render_call("BitsAndBytesConfig", config_kwargs, draw(STYLES), indent)
    inline = draw(st.booleans())
    load_args = ['"m"', f"quantization_config={config if inline else 'cfg'}"]
    alias = torch_import.split()[-1] if torch_import else "torch"
    dtype = draw(st.sampled_from(["", f"dtype={alias}.bfloat16", 'torch_dtype="auto"']))
    if dtype and (torch_import or "auto" in dtype):
        load_args.append(dtype)
    if draw(st.booleans()):
        load_args.append('device_map="auto"')
    if draw(st.booleans()):
        load_args[-1] += "  # keep this comment"
        style = draw(st.sampled_from(["multiline", "multiline_trailing"]))
    else:
        style = draw(STYLES)
    call = render_call("AutoModelForCausalLM.from_pretrained", load_args, style, indent)
    body = "" if inline else f"{indent}cfg = {config}\n"
    body += f"{indent}model = {call}\n"
    header = f"{torch_import}from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n\n"
    if in_function:
        return f"{header}\ndef load():\n{body}{indent}return model\n\n\nprint('done')\n"
    return f"{header}{body}print('done')\n"


@settings(max_examples=150, deadline=None)
@given(scripts())
def test_fix_properties(source: str) -> None:
    ast.parse(source)
    cfg = Settings()
    first = lint_text(source, "gen.py", cfg, fix=True, unsafe_fixes=True)
    fixed = first.fixed_text or source
    ast.parse(fixed)
    again = lint_text(fixed, "gen.py", cfg, fix=True, unsafe_fixes=True)
    assert again.fixed_text is None
    assert not [f for f in again.findings if f.applicability is not None]
    # Only lines of the config/load calls change; the only added line elsewhere is an import.
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        None, source.splitlines(), fixed.splitlines()
    ).get_opcodes():
        if tag == "equal":
            continue
        old = source.splitlines()[i1:i2]
        new = fixed.splitlines()[j1:j2]
        if tag == "insert" and new == ["import torch"]:
            continue
        touched = "\n".join(old + new)
        assert "print('done')" not in touched and "def load" not in touched
        assert "from transformers import" not in touched
        assert all("keep this comment" not in line for line in old) or any(
            "keep this comment" in line for line in new
        )
