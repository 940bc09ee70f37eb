"""The one pipeline every front end calls: text -> gates -> stdlib AST -> analysis model ->
rules -> findings (-> fixes, the only step that parses LibCST).

The CLI, the flake8 plugin and the other front ends call ``lint_text``/``lint_source``; none of
them re-implements a step. Each step lives in its own module; this one only orders them:

- ``bnblint.analysis.gate``: the byte and stdlib-AST gates (no LibCST);
- ``bnblint.parse``: the stdlib AST of a text (and LibCST's module, for the fix layer);
- ``bnblint.diagnose``: the rules run on the analysis model;
- ``bnblint.findings``: diagnostics to findings (positions, noqa; edits only when asked for);
- ``bnblint.fix.engine``: the fix loop (``bnblint.fix.nodes`` maps the fixes' ast nodes to
  LibCST's, parsed lazily per text).

The names other modules import from here are re-exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bnblint.analysis.gate import (
    LOAD_WORDS,
    can_fire,
    candidate_tree,
    has_candidate_call,
    may_matter,
    only_load_words,
    rule_words,
    words_for,
)
from bnblint.diagnose import diagnose
from bnblint.diagnostics import Finding
from bnblint.findings import resolve
from bnblint.fix.engine import MAX_FIX_PASSES, apply_fix_passes, fix_allowed
from bnblint.parse import parse_ast, parse_module
from bnblint.source import SourceFile

if TYPE_CHECKING:
    from bnblint.project import Project
    from bnblint.rules import Rule
    from bnblint.settings import Settings

__all__ = [
    "LOAD_WORDS",
    "MAX_FIX_PASSES",
    "FileResult",
    "add_noqa",
    "candidate_tree",
    "fix_allowed",
    "has_candidate_call",
    "lint_source",
    "lint_text",
    "may_matter",
    "parse_ast",
    "rule_words",
    "words_for",
]

# The fix-engine tests call the rules step alone, by its former name here.
_diagnose = diagnose


@dataclass
class FileResult:
    filename: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # "cannot read: ...", "cannot parse: ..."
    source: SourceFile | None = None
    fixed_text: str | None = None  # set when fixes changed the text
    # The findings whose fixes were applied: those of the original text, and those a first
    # fix enabled (a chained fix), positioned in the original text.
    fixed: list[Finding] = field(default_factory=list)
    # Fixes not applied and why, naming the rules: a pass that broke the syntax or would lose
    # bytes outside its edits, passes that did not converge. The text kept is the last good one.
    fix_problems: list[str] = field(default_factory=list)
    # Findings in other project files that this file's loads revealed (a config defined in the
    # module this one imports it from), with their edits on that file's text.
    foreign: list[Finding] = field(default_factory=list)
    # Linted only for what its loads reveal in the named files (an importer outside the run).
    context_only: bool = False
    # With --fix: the files whose loads revealed this file's foreign findings, and those of its
    # findings that came from them (the project fix rounds re-derive both after each round).
    revealed_by: set[str] = field(default_factory=set)
    from_foreign: list[Finding] = field(default_factory=list)


def lint_text(
    text: str,
    filename: str,
    settings: Settings,
    *,
    fix: bool = False,
    unsafe_fixes: bool = False,
    want_edits: bool = False,
    rules: Sequence[type[Rule]] | None = None,
    project: Project | None = None,
    notebook: bool = False,
) -> FileResult:
    """Lint (and optionally fix) one module's text; ``project`` resolves its imports of
    project modules; ``notebook``: the text is a notebook's program (one process)."""
    if rules is None:
        rules = settings.rules_for(filename)
    result = FileResult(filename)
    if not can_fire(text, rules):
        return result
    imported_only = only_load_words(text, rules)
    if imported_only and project is None:
        return result  # no bitsandbytes word and no project to bring one in
    candidate, tree = candidate_tree(text, imported_only)
    if not candidate:
        return result
    if tree is None:  # the gate let unparsable text through: its error is reported here
        tree, error = parse_module(text)
        if tree is None:
            result.error = error
            return result
    found = diagnose(tree, text, rules, settings, project, filename, notebook)
    # With --fix, the edits of findings in other project files are what fixes them there.
    findings, kept = resolve(
        tree, text, filename, found, want_edits, project, result.foreign, want_edits or fix
    )
    original = text
    if fix:
        outcome = apply_fix_passes(
            tree,
            text,
            filename,
            kept,
            findings,
            rules=rules,
            settings=settings,
            unsafe_fixes=unsafe_fixes,
            want_edits=want_edits,
            project=project,
            notebook=notebook,
        )
        text, findings = outcome.text, outcome.findings
        result.fixed, result.fix_problems = outcome.fixed, outcome.problems
    if project is not None:
        project.overlays.pop(str(Path(filename).resolve()), None)
    if text != original:
        result.fixed_text = text
    else:
        result.fixed = []
    result.findings = findings
    return result


def lint_source(
    text: str,
    filename: str,
    settings: Settings,
    *,
    fix: bool = False,
    unsafe_fixes: bool = False,
    want_edits: bool = False,
    rules: Sequence[type[Rule]] | None = None,
    project: Project | None = None,
) -> FileResult:
    """Any supported file by its name: ``.py`` directly; a notebook or a text document as its
    program, whose positions are mapped back to cells or file lines and whose fixed program is
    written back into them."""
    from bnblint.documents import DocumentError, document_type

    kind = document_type(filename)
    document = None
    if kind is not None:
        if rules is None:
            rules = settings.rules_for(filename)
        if not can_fire(text, rules):
            return FileResult(filename)  # a broken file that cannot matter is not an error
        try:
            document = kind.from_text(text)
        except DocumentError as exc:
            return FileResult(filename, error=f"cannot parse: {exc}")
        text = document.program
    result = lint_text(
        text,
        filename,
        settings,
        fix=fix,
        unsafe_fixes=unsafe_fixes,
        want_edits=want_edits,
        rules=rules,
        project=project if document is None else None,
        notebook=document is not None and filename.endswith(".ipynb"),
    )
    if document is None:
        return result
    final, final_program = document, text
    if result.fixed_text is not None:
        try:
            new_text = document.rebuild(result.fixed_text)
            final = type(document).from_text(new_text)
        except DocumentError as exc:
            return FileResult(filename, error=f"cannot fix: {exc}")
        result.fixed = [document.map_finding(f, text) for f in result.fixed]
        result.fixed_text = new_text
        final_program = final.program
    result.findings = sorted(
        (final.map_finding(f, final_program) for f in result.findings), key=Finding.sort_key
    )
    return result


def add_noqa(text: str, filename: str, settings: Settings) -> tuple[str, int]:
    """The text with a ``# noqa: CODE`` on the line of every current finding, and how many
    directives were added; notebooks and docs get them inside their cells and blocks."""
    from bnblint.documents import document_type
    from bnblint.noqa import add_noqa_directives

    kind = document_type(filename)
    if kind is None:
        return add_noqa_directives(text, lint_text(text, filename, settings).findings)
    document = kind.from_text(text)
    program = document.program
    new_program, added = add_noqa_directives(
        program, lint_text(program, filename, settings).findings
    )
    return (document.rebuild(new_program) if added else text), added
