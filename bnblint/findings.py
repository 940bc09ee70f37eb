"""Diagnostics to findings: positions in the file, noqa suppression, provenance in the message
and the text edits of fixes. Where a diagnostic becomes what the output formats show.

A diagnostic on a node of another project module (a config the load imported) becomes a
finding of that module's file. LibCST is imported only when there is something to resolve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnblint.diagnostics import Applicability, Diagnostic, Finding, Location
from bnblint.noqa import noqa_lines, suppressed

if TYPE_CHECKING:
    from collections.abc import Mapping

    import libcst as cst
    from libcst.metadata import CodeRange

    from bnblint.project import Project
    from bnblint.rules import Rule

    Positions = Mapping[cst.CSTNode, CodeRange]


def resolve(
    module: cst.Module,
    text: str,
    filename: str,
    found: list[tuple[type[Rule], Diagnostic]],
    want_edits: bool,
    project: Project | None = None,
    foreign: list[Finding] | None = None,
) -> tuple[list[Finding], list[Diagnostic]]:
    """Positions, noqa and text edits; returns findings and the diagnostics not suppressed.
    Diagnostics on nodes of other project modules go to ``foreign``, positioned in their file."""
    if not found:
        return [], []
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    from bnblint.fix.apply import LineIndex, edits_for

    # unsafe_skip_copy: node identity must survive (diagnostics hold nodes), and copying the
    # tree would cost more than the analysis.
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    noqa = noqa_lines(text)
    index = LineIndex(text) if want_edits else None
    findings: list[Finding] = []
    kept: list[Diagnostic] = []
    for rule, d in found:
        span = positions.get(d.node)
        if span is None:
            if project is not None and foreign is not None:
                finding = _foreign_finding(rule, d, filename, positions, project)
                if finding is not None:
                    foreign.append(finding)
            continue
        start = Location(span.start.line, span.start.column + 1)
        if suppressed(d.code, start.row, noqa):
            continue
        site = None
        if d.site is not None and d.site.call in positions:
            s = positions[d.site.call].start
            site = Location(s.line, s.column + 1)
        message = d.message + _provenance(d, filename, positions, project)
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
            end_location=Location(span.end.line, span.end.column + 1),
            level=rule.level,
            url=rule.url(),
            noqa_row=start.row,
            load_site=site,
        )
        if d.fix is not None:
            finding.fix_message = d.fix.message
            finding.applicability = applicability
            if index is not None:
                assert isinstance(module, cst.Module)
                finding.edits = edits_for(module, d.fix.operations, index)
        findings.append(finding)
        kept.append(d)
    findings.sort(key=Finding.sort_key)
    return findings, kept


def _where(
    node: cst.CSTNode,
    filename: str,
    positions: Positions,
    project: Project | None,
    qualify: bool = False,
) -> str | None:
    """``line 8`` in this file, ``pkg/quant.py:8`` in another project file (and in this one,
    with ``qualify``: for a finding shown in another file)."""
    span = positions.get(node)
    if span is not None:
        if qualify and project is not None:
            return f"`{project.relative(filename)}:{span.start.line}`"
        return f"line {span.start.line}"
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
            call = hop.call
            where = _where(call, filename, positions, project, qualify)
            name = hop.name
            hops.append(f"`{name}()` called at {where}" if where else f"`{name}()`")
        chain = ", then ".join(hops)
        if chain not in chains:
            chains.append(chain)
    if chains:
        parts.append("through " + "; ".join(chains))
    if site is not None and d.node is site.call and site.quantization is not None:
        config = site.quantization.config
        if config is not None and config.node not in positions and project is not None:
            where = _where(config.node, filename, positions, project)
            if where is not None:
                parts.append(f"config from {where}")
    return f" ({'; '.join(parts)})" if parts else ""


def _foreign_finding(
    rule: type[Rule], d: Diagnostic, filename: str, positions: Positions, project: Project
) -> Finding | None:
    """A diagnostic on a node of another project module, as a finding of that file."""
    owner = project.owner_of(d.node)
    if owner is None:
        return None
    path, builder = owner
    from bnblint.fix.apply import LineIndex, edits_for

    row, col, end_row, end_col = project.positions_of(builder)[id(d.node)]
    text = builder.source
    if suppressed(d.code, row, noqa_lines(text)):
        return None
    note = _provenance(d, filename, positions, project, qualify=True)
    if d.site is not None and d.site.call in positions:
        line = positions[d.site.call].start.line
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
        finding.edits = edits_for(builder.module, d.fix.operations, LineIndex(text))
    return finding
