"""Diagnostics to findings: positions in the file, noqa suppression, provenance in the message
and the text edits of fixes. Where a diagnostic becomes what the output formats show.

Positions come from the stdlib AST nodes and the text (``Positions``), so reporting never
needs LibCST; it is imported, and the text parsed with it, only when edits are asked for. A
diagnostic on a node of another project module (a config the load imported) becomes a finding
of that module's file.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from bnblint.analysis.syntax import DictItem, Node, Positions
from bnblint.diagnostics import Applicability, Diagnostic, Finding, Location
from bnblint.noqa import noqa_lines, suppressed

if TYPE_CHECKING:
    from collections.abc import Callable

    from bnblint.diagnostics import Operation, TextEdit
    from bnblint.project import Project
    from bnblint.rules import Rule


class _Own:
    """Which nodes belong to the document's own tree (the others are of other project
    modules); without a project every node is its own."""

    def __init__(self, tree: ast.Module, project: Project | None) -> None:
        self.tree, self.project = tree, project
        self._ids: set[int] | None = None

    def __call__(self, node: Node) -> bool:
        if self.project is None:
            return True
        if self._ids is None:
            self._ids = {id(n) for n in ast.walk(self.tree)}
        return id(node.dict if isinstance(node, DictItem) else node) in self._ids


def resolve(
    tree: ast.Module,
    text: str,
    filename: str,
    found: list[tuple[type[Rule], Diagnostic]],
    want_edits: bool,
    project: Project | None = None,
    foreign: list[Finding] | None = None,
    foreign_edits: bool | None = None,
) -> tuple[list[Finding], list[Diagnostic]]:
    """Positions, noqa and (with ``want_edits``) text edits; returns findings and the
    diagnostics not suppressed. Diagnostics on nodes of other project modules go to
    ``foreign``, positioned in their file, with edits when ``foreign_edits`` (default:
    ``want_edits``)."""
    if not found:
        return [], []
    positions = Positions(text)
    own = _Own(tree, project)
    noqa = noqa_lines(text)
    edits = _edits_of(text) if want_edits else None
    findings: list[Finding] = []
    kept: list[Diagnostic] = []
    for rule, d in found:
        if not own(d.node):
            if project is not None and foreign is not None:
                with_edits = want_edits if foreign_edits is None else foreign_edits
                finding = _foreign_finding(rule, d, filename, positions, own, project, with_edits)
                if finding is not None:
                    foreign.append(finding)
            continue
        row, column, end_row, end_column = positions.span(d.node)
        start = Location(row, column)
        if suppressed(d.code, start.row, noqa):
            continue
        site = None
        if d.site is not None and own(d.site.call):
            s_row, s_column, _, _ = positions.span(d.site.call)
            site = Location(s_row, s_column)
        message = d.message + _provenance(d, filename, positions, own, project)
        applicability = d.fix.applicability if d.fix is not None else None
        if d.site is not None and d.site.via and applicability is Applicability.SAFE:
            # Found through a caller's arguments: the edit is right for that call, but the
            # code it changes may serve other callers too.
            applicability = Applicability.UNSAFE
        finding = Finding(
            code=d.code,
            message=message,
            filename=filename,
            location=start,
            end_location=Location(end_row, end_column),
            level=rule.level,
            url=rule.url(),
            noqa_row=start.row,
            load_site=site,
        )
        if d.fix is not None:
            finding.fix_message = d.fix.message
            finding.applicability = applicability
            if edits is not None:
                finding.edits = edits(d.fix.operations)
        findings.append(finding)
        kept.append(d)
    findings.sort(key=Finding.sort_key)
    return findings, kept


def _edits_of(text: str) -> Callable[[tuple[Operation, ...]], list[TextEdit]]:
    """A fix's text edits on ``text``: the one place reporting reaches LibCST (parsed once per
    text, when the first edit is asked for)."""
    from bnblint.fix.apply import fix_edits
    from bnblint.fix.nodes import document_for

    def edits(operations: tuple[Operation, ...]) -> list[TextEdit]:
        return fix_edits(document_for(text), operations)

    return edits


def _where(
    node: Node,
    filename: str,
    positions: Positions,
    own: _Own,
    project: Project | None,
    qualify: bool = False,
) -> str | None:
    """``line 8`` in this file, ``pkg/quant.py:8`` in another project file (and in this one,
    with ``qualify``: for a finding shown in another file)."""
    if own(node):
        row = positions.span(node)[0]
        if qualify and project is not None:
            return f"`{project.relative(filename)}:{row}`"
        return f"line {row}"
    if project is None:
        return None
    found = project.position(node)
    if found is None:
        return None
    path, row, _ = found
    return f"`{project.relative(path)}:{row}`"


def _provenance(
    d: Diagnostic,
    filename: str,
    positions: Positions,
    own: _Own,
    project: Project | None,
    qualify: bool = False,
) -> str:
    """Where a value that crossed a boundary came from, for the message."""
    parts: list[str] = []
    site = d.site
    chains: list[str] = []
    for s in (site, *d.related) if site is not None else ():
        if not s.via:
            continue
        hops = []
        for hop in s.via:
            where = _where(hop.call, filename, positions, own, project, qualify)
            name = hop.name
            hops.append(f"`{name}()` called at {where}" if where else f"`{name}()`")
        chain = ", then ".join(hops)
        if chain not in chains:
            chains.append(chain)
    if chains:
        parts.append("through " + "; ".join(chains))
    if site is not None and d.node is site.call and site.quantization is not None:
        config = site.quantization.config
        if config is not None and not own(config.node) and project is not None:
            where = _where(config.node, filename, positions, own, project)
            if where is not None:
                parts.append(f"config from {where}")
    return f" ({'; '.join(parts)})" if parts else ""


def _foreign_finding(
    rule: type[Rule],
    d: Diagnostic,
    filename: str,
    positions: Positions,
    own: _Own,
    project: Project,
    want_edits: bool,
) -> Finding | None:
    """A diagnostic on a node of another project module, as a finding of that file."""
    owner = project.owner_of(d.node)
    if owner is None:
        return None
    path, builder = owner
    text = builder.source
    span = project.positions_of(builder).get(id(d.node))
    if span is None:  # a node the summary's positions leave out (a dict entry)
        span = Positions(text).span(d.node)
    row, col, end_row, end_col = span
    if suppressed(d.code, row, noqa_lines(text)):
        return None
    note = _provenance(d, filename, positions, own, project, qualify=True)
    if d.site is not None and own(d.site.call):
        line = positions.span(d.site.call)[0]
        note += f" (reaches the load at `{project.relative(filename)}:{line}`)"
    finding = Finding(
        code=d.code,
        message=d.message + note,
        filename=path,
        location=Location(row, col),
        end_location=Location(end_row, end_col),
        level=rule.level,
        url=rule.url(),
        noqa_row=row,
    )
    if d.fix is not None:
        finding.fix_message = d.fix.message
        finding.applicability = d.fix.applicability
        if d.site is not None and d.site.via and d.fix.applicability is Applicability.SAFE:
            finding.applicability = Applicability.UNSAFE  # as for a finding of this file
        if want_edits:  # LibCST of that file's text, parsed only now
            finding.edits = _edits_of(text)(d.fix.operations)
    return finding
