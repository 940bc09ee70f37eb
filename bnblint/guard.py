"""Guards against input that would take down the process rather than fail: LibCST's native
parser crashes (a segmentation fault, measured at about 1,300 nested brackets) and the analysis
recurses on very deep code. A file past these limits is one error line; the run goes on."""

from __future__ import annotations

import io
import tokenize

# Deeper bracket nesting than this is not handed to LibCST (the stdlib parser refuses 200).
MAX_NESTING = 100
_OPENERS = frozenset("([{")
_CLOSERS = frozenset(")]}")
TOO_DEEP = f"cannot analyse: nested too deeply (over {MAX_NESTING} levels of brackets)"
RECURSION = "cannot analyse: the code is nested too deeply for the analysis (RecursionError)"


def nesting_depth(text: str, limit: int = MAX_NESTING) -> int:
    """The deepest bracket nesting of ``text``, counted on tokens (brackets in strings and
    comments do not count); it stops early once past ``limit``."""
    if sum(text.count(c) for c in _OPENERS) <= limit:
        return 0  # the common case, without tokenizing: the depth cannot exceed the count
    depth = deepest = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in _OPENERS:
                depth += 1
                if depth > limit:
                    return depth
                deepest = max(deepest, depth)
            elif token.string in _CLOSERS:
                depth = max(depth - 1, 0)
    except (tokenize.TokenError, SyntaxError):
        # Mid-edit text may not tokenize to its end (Python 3.12+ stops at the first error):
        # count raw characters instead, erring on the side of not parsing.
        deepest = max(deepest, _raw_depth(text))
    return deepest


def _raw_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif ch in _CLOSERS:
            depth = max(depth - 1, 0)
    return deepest


