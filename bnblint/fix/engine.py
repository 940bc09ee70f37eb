"""The fix loop: apply the fixable diagnostics' fixes pass after pass, re-linting in between,
until nothing is left to fix; record what was applied (by identity) and what was not and why.

Imported by the pipeline, which the CLI loads at startup: LibCST is imported (and each pass's
text parsed with it, once) only when a fix is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bnblint.analysis.syntax import Positions
from bnblint.diagnose import diagnose
from bnblint.diagnostics import Applicability, Diagnostic, Finding, Location
from bnblint.findings import resolve
from bnblint.parse import parse_ast

if TYPE_CHECKING:
    import ast

    from bnblint.project import Project
    from bnblint.rules import Rule
    from bnblint.settings import Settings

MAX_FIX_PASSES = 5  # one fix can enable another; stop long before anything could cycle


def fix_allowed(applicability: Applicability | None, unsafe_fixes: bool) -> bool:
    if applicability is Applicability.SAFE:
        return True
    return unsafe_fixes and applicability is Applicability.UNSAFE


@dataclass
class FixOutcome:
    """What the fix loop left: the text of the last good pass (the original when none was
    kept) with its findings, the findings whose fixes were applied and the problems met."""

    text: str
    findings: list[Finding]
    fixed: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def apply_fix_passes(
    tree: ast.Module,
    text: str,
    filename: str,
    kept: list[Diagnostic],
    findings: list[Finding],
    *,
    rules: Sequence[type[Rule]],
    settings: Settings,
    unsafe_fixes: bool,
    want_edits: bool,
    project: Project | None,
    notebook: bool,
) -> FixOutcome:
    """Fix ``text`` (parsed as ``tree``; ``kept`` its diagnostics, ``findings`` their
    findings). Each pass maps the fixes' ast nodes to LibCST's tree of that pass's text (parsed
    once) and applies them there; then the new text is analysed again (``ast``). Each kept
    pass is written to ``project``'s overlays, so that the re-lint sees the fixed text; the
    caller removes the overlay."""
    from bnblint.fix.apply import EXACT_PROBLEM, apply_fixes, document_tree
    from bnblint.fix.nodes import CstOperation, Unmapped, document_for

    outcome = FixOutcome(text, findings)
    original = text
    # The replacements of each pass that was kept, to position chained findings in the original.
    passes: list[list[tuple[int, int, str]]] = []
    for round_ in range(MAX_FIX_PASSES + 1):
        fixable = [
            d for d in kept if d.fix is not None and fix_allowed(d.fix.applicability, unsafe_fixes)
        ]
        if not fixable:
            break
        document = document_for(text)
        module, edit_state = document.module, document_tree(document)
        if module is None or edit_state is None or not edit_state.exact:
            # No LibCST tree to map the fixes to, or one whose positions are not the text's.
            codes = ", ".join(sorted({d.code for d in fixable}))
            why = document.failure() if module is None else EXACT_PROBLEM
            _report(outcome, f"Fix not applied ({codes}): {why}")
            break
        usable: list[Diagnostic] = []
        translated: list[tuple[CstOperation, ...]] = []
        for d in fixable:
            assert d.fix is not None
            try:
                translated.append(document.translate(d.fix.operations))
            except Unmapped as exc:  # never guess where LibCST reads the text differently
                _report(outcome, f"Fix not applied ({d.code}): {exc}")
                continue
            usable.append(d)
        if not usable:
            break
        try:
            step = apply_fixes(module, text, translated)
        except Exception as exc:  # a fix builder's bug must not take the run down
            codes = ", ".join(sorted({d.code for d in usable}))
            outcome.problems.append(f"Fix failed ({codes}): {type(exc).__name__}: {exc}")
            break
        applied = [usable[i] for i in step.applied]
        codes = ", ".join(sorted({d.code for d in applied} or {d.code for d in usable}))
        if round_ == MAX_FIX_PASSES:  # what is still fixable after the last pass
            if applied:
                outcome.problems.append(
                    f"Failed to converge after {MAX_FIX_PASSES} iterations ({codes}): "
                    "the text of the last iteration is kept"
                )
            break
        if step.problem is not None:
            outcome.problems.append(f"Fix not applied ({codes}): {step.problem}")
            break
        if not applied or step.text == text:
            break
        try:
            new_tree = parse_ast(step.text)
        except (SyntaxError, ValueError, MemoryError):
            outcome.problems.append(
                f"Fix introduced a syntax error ({codes}): the changes of that pass are reverted"
            )
            break  # a fix must never make the file unparsable: keep what we have
        outcome.fixed += applied_findings(text, original, applied, kept, findings, passes)
        passes.append(step.edits)
        tree, text = new_tree, step.text
        if project is not None:
            project.overlays[str(Path(filename).resolve())] = text
        found = diagnose(tree, text, rules, settings, project, filename, notebook)
        findings, kept = resolve(tree, text, filename, found, want_edits, project)
    outcome.text, outcome.findings = text, findings
    return outcome


def _report(outcome: FixOutcome, problem: str) -> None:
    """A problem once, however many passes meet it."""
    if problem not in outcome.problems:
        outcome.problems.append(problem)


def applied_findings(
    text: str,
    original: str,
    applied: list[Diagnostic],
    kept: list[Diagnostic],
    findings: list[Finding],
    passes: list[list[tuple[int, int, str]]],
) -> list[Finding]:
    """The findings of the diagnostics whose fixes were applied, by identity: ``findings`` is
    ``kept`` resolved and sorted (stably), so the n-th diagnostic with a (code, start) is the
    n-th finding with it. A later pass's findings are moved to the original text's positions.
    ``kept`` holds this text's own diagnostics only (``resolve`` routes the others away)."""
    from bnblint.fix.apply import LineIndex, map_back

    positions = Positions(text)
    by_key: dict[tuple[str, Location], list[Finding]] = {}
    for f in findings:
        by_key.setdefault((f.code, f.location), []).append(f)
    chosen = {id(d) for d in applied}
    out = []
    for d in kept:
        row, column, _, _ = positions.span(d.node)
        key = (d.code, Location(row, column))
        bucket = by_key.get(key)
        if bucket and id(d) in chosen:
            out.append(bucket.pop(0))
        elif bucket:
            bucket.pop(0)
    if not passes:
        return out
    here, there = LineIndex(text), LineIndex(original)

    def move(location: Location) -> Location:
        offset = here.offset(location)
        for edits in reversed(passes):
            offset = map_back(offset, edits)
        return there.location(offset)

    for f in out:
        f.location, f.end_location = move(f.location), move(f.end_location)
        f.load_site = None if f.load_site is None else move(f.load_site)
        f.noqa_row, f.edits = f.location.row, []
    return out
