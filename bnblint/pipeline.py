"""The one pipeline every front end calls: text -> CST -> analysis model -> rules -> findings.

The CLI, the flake8 plugin and future front ends call ``lint_text``/``lint_file``; none of them
re-implements a step.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from bnblint.diagnostics import Applicability, Diagnostic, Finding, Location
from bnblint.noqa import noqa_lines, suppressed
from bnblint.project import EXTERNAL_ROOTS
from bnblint.rules import Rule
from bnblint.settings import Settings
from bnblint.source import SourceFile

if TYPE_CHECKING:
    from collections.abc import Mapping

    import libcst as cst
    from libcst.metadata import CodeRange

    from bnblint.project import Project

    Positions = Mapping[cst.CSTNode, CodeRange]

MAX_FIX_PASSES = 5  # one fix can enable another; stop long before anything could cycle


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


def words_for(rules: Sequence[type[Rule]]) -> tuple[bytes, ...]:
    return _words(tuple(rules))


# A load can get its quantization from another module (a config, a kwargs dict, a helper), so a
# file with a load is worth the stdlib-AST gate even when it names no bitsandbytes word.
LOAD_WORDS = (b"from_pretrained", b"model_init_kwargs")


@lru_cache(maxsize=64)
def _words(rules: tuple[type[Rule], ...]) -> tuple[bytes, ...]:
    if not rules:
        return ()
    return tuple(sorted({w for rule in rules for w in rule.words} | set(LOAD_WORDS)))


def may_matter(data: bytes, rules: Sequence[type[Rule]]) -> bool:
    """Byte prefilter: can any selected rule fire in a file with these bytes?"""
    return any(word in data for word in words_for(rules))


def parse_ast(text: str) -> ast.Module:
    """The stdlib AST; top-level ``await`` is allowed, as notebooks use it."""
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(text, "<bnblint>", "exec", flags=flags, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def has_candidate_call(text: str) -> bool:
    return candidate_tree(text)[0]


def candidate_tree(text: str, imported_only: bool = False) -> tuple[bool, ast.Module | None]:
    """Cheap second filter: does the module call a load or a config that can matter? Also
    returns the stdlib AST, which the analysis reuses to skip function bodies.

    The stdlib parser is about 15x faster than LibCST's, and most files that mention a
    bitsandbytes word only do so in docstrings, comments, definitions or calls that cannot
    carry quantization. A candidate is a load (``X.from_pretrained``, ``pipeline``) with some
    keyword or ``**`` argument, on a receiver that is not a tokenizer, processor or config by
    name, or a ``BitsAndBytesConfig`` call with arguments (an argument-less one only matters
    where it reaches a load). On the installed transformers package: 8 files pass the byte
    filter, 1 has a candidate. Unparsable text passes, so that LibCST reports the error.

    ``imported_only``: the file names no bitsandbytes word, so a load can only be quantized by
    what it gets from another module: a keyword value or ``**splat`` that mentions an imported
    name (or ``**self.<attr>``, set in a base class). Keeps the thousands of ``**kwargs``
    forwarding loads of a library out of the analysis.
    """
    try:
        tree = parse_ast(text)
    except (SyntaxError, ValueError):
        return True, None
    configs, pipelines = {"BitsAndBytesConfig"}, {"pipeline"}
    calls = []
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.asname and alias.name == "BitsAndBytesConfig":
                    configs.add(alias.asname)
                elif alias.asname and alias.name == "pipeline":
                    pipelines.add(alias.asname)
                if node.level or (node.module or "").split(".")[0] not in EXTERNAL_ROOTS:
                    imported.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in EXTERNAL_ROOTS:
                    imported.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Call):
            calls.append(node)
    if imported_only:
        return any(_uses_import(c, imported) for c in calls), tree
    for call in calls:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in configs and (call.args or call.keywords):
            return True, tree
        if name == "dict" and any(
            k.arg == "type"
            and (
                (isinstance(k.value, ast.Attribute) and k.value.attr == "from_pretrained")
                or getattr(k.value, "id", None) in configs
            )
            for k in call.keywords
        ):
            return True, tree  # an mmengine lazy config (xtuner): a load or a config
        if any(k.arg == "model_init_kwargs" for k in call.keywords):
            return True, tree  # a TRL config: its trainer may load with these keywords
        if not call.keywords:
            continue  # a load without keywords or ** cannot be quantized
        if name == "from_pretrained" and not _non_model(func):
            return True, tree
        if name in pipelines:
            return True, tree
    return False, tree


def _uses_import(call: ast.Call, imported: set[str]) -> bool:
    """A load whose keywords mention an imported name, or that splats ``self.<attr>``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("from_pretrained", "pipeline") or not call.keywords or _non_model(func):
        return False
    for keyword in call.keywords:
        value = keyword.value
        if (
            keyword.arg is None
            and isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and value.value.id == "self"
        ):
            return True
        for node in ast.walk(value):
            if isinstance(node, ast.Name) and node.id in imported:
                return True
    return False


def _non_model(func: ast.expr) -> bool:
    """``AutoTokenizer.from_pretrained``, ``AutoConfig.from_pretrained``: never a model load."""
    from bnblint.analysis.names import NON_MODEL_SUFFIXES

    receiver = func.value if isinstance(func, ast.Attribute) else None
    name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
    return bool(name) and name.endswith(NON_MODEL_SUFFIXES)


def _can_fire(text: str, rules: Sequence[type[Rule]]) -> bool:
    """The byte prefilter, on text (stdin, editors, documents)."""
    return bool(rules) and any(w.decode() in text for w in words_for(rules))


def _imported_only(text: str, rules: Sequence[type[Rule]]) -> bool:
    """Whether only the load words passed the prefilter (no rule's own word is in the text)."""
    return not any(w.decode() in text for w in rule_words(rules))


def rule_words(rules: Sequence[type[Rule]]) -> tuple[bytes, ...]:
    """The rules' own words, without the load words."""
    return _rule_words(tuple(rules))


@lru_cache(maxsize=64)
def _rule_words(rules: tuple[type[Rule], ...]) -> tuple[bytes, ...]:
    return tuple(sorted({w for rule in rules for w in rule.words}))


def fix_allowed(applicability: Applicability | None, unsafe_fixes: bool) -> bool:
    if applicability is Applicability.SAFE:
        return True
    return unsafe_fixes and applicability is Applicability.UNSAFE


def _diagnose(
    module: cst.Module,
    text: str,
    rules: Sequence[type[Rule]],
    settings: Settings,
    tree: ast.Module | None,
    project: Project | None = None,
    filename: str | None = None,
    notebook: bool = False,
) -> list[tuple[type[Rule], Diagnostic]]:
    from bnblint.analysis.builder import build_model

    model = build_model(module, text, tree, project, filename)
    model.notebook = notebook
    context = settings.context
    found: list[tuple[type[Rule], Diagnostic]] = []
    for rule in rules:
        for diagnostic in rule().check(model, context):
            found.append((rule, diagnostic))
    # A load reached directly and through a call with known arguments can give the same
    # finding twice: keep one, the one its own function sees when there is one.
    found.sort(key=lambda f: len(f[1].site.via) if f[1].site is not None else 0)
    seen: set[tuple[str, int]] = set()
    unique = []
    for rule, d in found:
        key = (d.code, id(d.node))
        if key not in seen:
            seen.add(key)
            unique.append((rule, d))
    return unique


def _resolve(
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
    from bnblint.analysis.builder import Hop  # LibCST is loaded by now: there are findings

    for s in (site, *d.related) if site is not None else ():
        if not s.via:
            continue
        hops = []
        for hop in s.via:
            assert isinstance(hop, Hop)
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
    from bnblint.noqa import noqa_lines, suppressed

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
    if not _can_fire(text, rules):
        return result
    imported_only = _imported_only(text, rules)
    if imported_only and project is None:
        return result  # no bitsandbytes word and no project to bring one in
    candidate, tree = candidate_tree(text, imported_only)
    if not candidate:
        return result
    import libcst as cst

    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        result.error = f"cannot parse: line {exc.raw_line}:{exc.raw_column}: {exc.message}"
        return result
    except Exception as exc:  # LibCST raises a few other types on odd input
        result.error = f"cannot parse: {type(exc).__name__}: {exc}"
        return result
    found = _diagnose(module, text, rules, settings, tree, project, filename, notebook)
    findings, kept = _resolve(
        module, text, filename, found, want_edits, project, result.foreign
    )
    from bnblint.fix.apply import apply_fixes

    original = text
    # The replacements of each pass that was kept, to position chained findings in the original.
    passes: list[list[tuple[int, int, str]]] = []
    for round_ in range(MAX_FIX_PASSES + 1 if fix else 0):
        fixable = [
            d for d in kept if d.fix is not None and fix_allowed(d.fix.applicability, unsafe_fixes)
        ]
        if not fixable:
            break
        try:
            step = apply_fixes(module, text, [d.fix.operations for d in fixable if d.fix])
        except Exception as exc:  # a fix builder's bug must not take the run down
            codes = ", ".join(sorted({d.code for d in fixable}))
            result.fix_problems.append(f"Fix failed ({codes}): {type(exc).__name__}: {exc}")
            break
        applied = [fixable[i] for i in step.applied]
        codes = ", ".join(sorted({d.code for d in applied} or {d.code for d in fixable}))
        if round_ == MAX_FIX_PASSES:  # what is still fixable after the last pass
            if applied:
                result.fix_problems.append(
                    f"Failed to converge after {MAX_FIX_PASSES} iterations ({codes}): "
                    "the text of the last iteration is kept"
                )
            break
        if step.problem is not None:
            result.fix_problems.append(f"Fix not applied ({codes}): {step.problem}")
            break
        if not applied or step.text == text:
            break
        try:
            parse_ast(step.text)
            new_module = cst.parse_module(step.text)
        except (SyntaxError, ValueError, cst.ParserSyntaxError):
            result.fix_problems.append(
                f"Fix introduced a syntax error ({codes}): the changes of that pass are reverted"
            )
            break  # a fix must never make the file unparsable: keep what we have
        result.fixed += _applied_findings(module, text, original, applied, kept, findings, passes)
        passes.append(step.edits)
        module, text = new_module, step.text
        if project is not None:
            project.overlays[str(Path(filename).resolve())] = text
        found = _diagnose(module, text, rules, settings, None, project, filename, notebook)
        findings, kept = _resolve(module, text, filename, found, want_edits, project)
    if project is not None:
        project.overlays.pop(str(Path(filename).resolve()), None)
    if text != original:
        result.fixed_text = text
    else:
        result.fixed = []
    result.findings = findings
    return result


def _applied_findings(
    module: cst.Module,
    text: str,
    original: str,
    applied: list[Diagnostic],
    kept: list[Diagnostic],
    findings: list[Finding],
    passes: list[list[tuple[int, int, str]]],
) -> list[Finding]:
    """The findings of the diagnostics whose fixes were applied, by identity: ``findings`` is
    ``kept`` resolved and sorted (stably), so the n-th diagnostic with a (code, start) is the
    n-th finding with it. A later pass's findings are moved to the original text's positions."""
    from bnblint.fix.apply import LineIndex, map_back, node_starts

    starts = node_starts(module, text)
    by_key: dict[tuple[str, Location], list[Finding]] = {}
    for f in findings:
        by_key.setdefault((f.code, f.location), []).append(f)
    chosen = {id(d) for d in applied}
    out = []
    for d in kept:
        span = starts.get(d.node)
        if span is None:
            continue
        key = (d.code, Location(span.start.line, span.start.column + 1))
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
        if not _can_fire(text, rules):
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
