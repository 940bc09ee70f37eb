"""Append an item to a call's arguments or a dict literal, in the style already written there.

A multi-line call gets the new item on its own line with the indentation of its siblings, and
keeps its trailing-comma style; a comment after the last item stays on that item's line.
"""

from __future__ import annotations

from typing import Union

import libcst as cst

Whitespace = Union[cst.BaseParenthesizableWhitespace, cst.MaybeSentinel]


def _strip_comment(ws: cst.BaseParenthesizableWhitespace) -> cst.BaseParenthesizableWhitespace:
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return ws.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
    return ws


def _keep_comment_then(
    closing: cst.BaseParenthesizableWhitespace, sep: cst.BaseParenthesizableWhitespace
) -> cst.BaseParenthesizableWhitespace:
    """Whitespace after the old last item: its own trailing comment, then the separator."""
    has_comment = isinstance(closing, cst.ParenthesizedWhitespace) and (
        closing.first_line.comment is not None or closing.empty_lines
    )
    if not has_comment:
        return sep
    assert isinstance(closing, cst.ParenthesizedWhitespace)
    if isinstance(sep, cst.ParenthesizedWhitespace):
        return sep.with_changes(first_line=closing.first_line, empty_lines=closing.empty_lines)
    return closing.with_changes(indent=True, last_line=closing.last_line)


def _separator(
    previous: cst.Comma | cst.MaybeSentinel | None, opening: cst.BaseParenthesizableWhitespace
) -> cst.BaseParenthesizableWhitespace:
    """The whitespace written between two items: after an earlier comma, or after the bracket."""
    if isinstance(previous, cst.Comma):
        return _strip_comment(previous.whitespace_after)
    if isinstance(opening, cst.ParenthesizedWhitespace):
        return _strip_comment(opening)
    return cst.SimpleWhitespace(" ")


def append_keyword(call: cst.Call, name: str, value: cst.BaseExpression) -> cst.Call:
    new = cst.Arg(
        keyword=cst.Name(name),
        value=value,
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )
    args = list(call.args)
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    sep = _separator(args[-2].comma if len(args) > 1 else None, call.whitespace_before_args)
    if isinstance(last.comma, cst.Comma):
        closing = last.comma.whitespace_after
        args[-1] = last.with_changes(
            comma=last.comma.with_changes(whitespace_after=_keep_comment_then(closing, sep))
        )
        new = new.with_changes(
            comma=cst.Comma(whitespace_after=_strip_comment(closing)),
            whitespace_after_arg=last.whitespace_after_arg,
        )
    else:
        closing = last.whitespace_after_arg
        args[-1] = last.with_changes(
            comma=cst.Comma(whitespace_after=_keep_comment_then(closing, sep)),
            whitespace_after_arg=cst.SimpleWhitespace(""),
        )
        new = new.with_changes(whitespace_after_arg=_strip_comment(closing))
    return call.with_changes(args=[*args, new])


def append_dict_entry(
    node: cst.Dict, key: cst.BaseExpression, value: cst.BaseExpression
) -> cst.Dict:
    new = cst.DictElement(key=key, value=value)
    elements = list(node.elements)
    if not elements:
        return node.with_changes(elements=[new])
    last = elements[-1]
    sep = _separator(
        elements[-2].comma if len(elements) > 1 else None, node.lbrace.whitespace_after
    )
    closing = node.rbrace.whitespace_before
    if isinstance(last.comma, cst.Comma):
        new = new.with_changes(comma=last.comma)
        elements[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=sep))
        return node.with_changes(elements=[*elements, new])
    elements[-1] = last.with_changes(
        comma=cst.Comma(whitespace_after=_keep_comment_then(closing, sep))
    )
    return node.with_changes(
        elements=[*elements, new],
        rbrace=node.rbrace.with_changes(whitespace_before=_strip_comment(closing)),
    )


def remove_keyword(call: cst.Call, name: str) -> cst.Call:
    """Drop ``name=...``; the closing whitespace and trailing-comma style stay as written."""
    args = list(call.args)
    index = next(
        (i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == name), None
    )
    if index is None:
        return call
    removed = args.pop(index)
    if args and index == len(args):  # removed the last: the new last takes its ending
        last = args[-1]
        if isinstance(removed.comma, cst.Comma):
            args[-1] = last.with_changes(comma=removed.comma)
        else:
            args[-1] = last.with_changes(
                comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=removed.whitespace_after_arg
            )
    return call.with_changes(args=args)


def remove_dict_entry(node: cst.Dict, key: str) -> cst.Dict:
    elements = list(node.elements)
    index = next(
        (
            i
            for i, e in enumerate(elements)
            if isinstance(e, cst.DictElement)
            and isinstance(e.key, cst.SimpleString)
            and e.key.evaluated_value == key
        ),
        None,
    )
    if index is None:
        return node
    removed = elements.pop(index)
    if elements and index == len(elements):
        elements[-1] = elements[-1].with_changes(comma=removed.comma)
    return node.with_changes(elements=elements)
