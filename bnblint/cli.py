"""The ``bnblint`` command line."""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import TextIO

import click
from click.core import ParameterSource

from bnblint import __version__
from bnblint.lines import split_lines
from bnblint.output import FORMAT_NAMES, Renderer, Report, get_renderer, wants_edits
from bnblint.pipeline import FileResult
from bnblint.rules import ALL_RULES, RULES_BY_CODE
from bnblint.settings import (
    ConfigError,
    Settings,
    load_settings,
    parse_cli_codes,
    parse_compute_dtype,
    parse_target,
    settings_for_path,
)
from bnblint.source import SourceError, SourceFile, decode, linted_tree, write_source


class DefaultGroup(click.Group):
    """``bnblint src/`` and ``bnblint --fix src/`` mean ``bnblint check ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (
            args[0] not in self.commands and args[0] not in ("-h", "--help", "--version")
        ):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnblint")
def main() -> None:
    """Find and fix slow or broken bitsandbytes model loads."""


def _fail(message: str) -> None:
    click.echo(f"bnblint: error: {message}", err=True)
    sys.exit(2)


def _settings(config: str | None, paths: tuple[str, ...], stdin_filename: str | None) -> Settings:
    if config is not None:
        return load_settings(Path(config))
    start = Path(stdin_filename or (paths[0] if paths and paths[0] != "-" else "."))
    return settings_for_path(start)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--fix", is_flag=True, help="Apply fixes (safe ones unless --unsafe-fixes).")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply and offer unsafe fixes.")
@click.option("--diff", is_flag=True, help="Print the fixes as a diff; change nothing.")
@click.option("--show-fixes", is_flag=True, help="List the fixes applied.")
@click.option("--select", multiple=True, help="Rule codes or prefixes to enable (comma-separated).")
@click.option("--ignore", multiple=True, help="Rule codes or prefixes to disable.")
@click.option("--extend-select", multiple=True, help="Codes to enable on top of the configuration.")
@click.option(
    "--extend-ignore", multiple=True, help="Codes to disable on top of the configuration."
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even if findings remain.")
@click.option("--output-format", type=click.Choice(FORMAT_NAMES), default="text", show_default=True)
@click.option("--statistics", is_flag=True, help="Count findings per rule instead of listing them.")
@click.option("--add-noqa", is_flag=True, help="Add `# noqa` directives to the flagged lines.")
@click.option("--stdin-filename", help="The name of the file read from stdin (`-`).")
@click.option("--config", type=click.Path(), help="A pyproject.toml to read [tool.bnblint] from.")
@click.option("--compute-dtype", help="Compute dtype BNB002 writes when the load has none.")
@click.option(
    "--target-transformers",
    help="The transformers the code runs on (4.57, or a specifier); default: the project's pin.",
)
@click.option(
    "--show-settings", is_flag=True, help="Print the settings each PATH is checked with; exit."
)
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes.")
@click.option("--color/--no-color", default=None, help="Colour (default: on a terminal).")
@click.option("--no-notebooks", is_flag=True, help="Do not look for .ipynb files in directories.")
@click.option("--docs", is_flag=True, help="Also lint Python code blocks in .md/.rst files.")
def check(
    paths: tuple[str, ...],
    fix: bool,
    unsafe_fixes: bool,
    diff: bool,
    show_fixes: bool,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    extend_select: tuple[str, ...],
    extend_ignore: tuple[str, ...],
    exit_zero: bool,
    output_format: str,
    statistics: bool,
    add_noqa: bool,
    stdin_filename: str | None,
    config: str | None,
    compute_dtype: str | None,
    target_transformers: str | None,
    show_settings: bool,
    jobs: int | None,
    color: bool | None,
    no_notebooks: bool,
    docs: bool,
) -> None:
    """Check PATHS (default: .) for bitsandbytes load mistakes."""
    try:
        settings = _settings(config, paths, stdin_filename)
        settings = settings.override(
            select=parse_cli_codes(select, "--select"),
            ignore=parse_cli_codes(ignore, "--ignore"),
            compute_dtype=parse_compute_dtype(compute_dtype, "--compute-dtype")
            if compute_dtype is not None
            else None,
            target_transformers=parse_target(target_transformers, "--target-transformers")
            if target_transformers is not None
            else None,
        )
        more = parse_cli_codes(extend_select, "--extend-select")
        less = parse_cli_codes(extend_ignore, "--extend-ignore")
    except ConfigError as exc:
        _fail(str(exc))
        return
    if more:
        settings = settings.override(select=settings.select + more)
    if less:
        settings = settings.override(ignore=settings.ignore + less)
    if show_settings:
        named = paths if paths and paths != ("-",) else (stdin_filename or ".",)
        _show_settings(settings, named)
        return
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    want_edits = wants_edits(output_format) or diff
    stdin = paths == ("-",) or (not paths and stdin_filename is not None)
    if add_noqa:
        if fix or diff or stdin:
            _fail("--add-noqa cannot be used with --fix, --diff or stdin")
        _add_noqa(settings, paths or (".",), jobs)
    # In GitHub Actions the readable text stays in the log and annotations are added for the
    # pull request view, unless the user chose a format.
    annotate = (
        os.environ.get("GITHUB_ACTIONS", "").lower() == "true"
        and click.get_current_context().get_parameter_source("output_format")
        is ParameterSource.DEFAULT
    )
    render = _renderer(output_format, statistics, annotate)
    changed = False
    report = Report(
        fix=fix and not diff, unsafe_fixes=unsafe_fixes, show_fixes=show_fixes, color=color
    )
    if stdin:
        _check_stdin(
            settings, stdin_filename, fix, diff, unsafe_fixes, report, output_format, render
        )
    else:
        _check_paths(
            settings,
            paths or (".",),
            not no_notebooks,
            docs,
            fix,
            diff,
            unsafe_fixes,
            want_edits,
            jobs,
            report,
        )
        if diff:
            changed = _print_diffs(report)
        else:
            render(report, sys.stdout)
    for result in report.errors:
        click.echo(f"{result.filename}: {result.error}", err=True)
    problems = False
    for result in report.results:  # fixes not applied: "Fix introduced a syntax error", ...
        for problem in result.fix_problems:
            problems = True
            click.echo(f"{result.filename}: error: {problem}", err=True)
    if diff and not stdin:
        # As ruff: a diff to show is exit 1; so is a fix that could not be made or a file
        # that could not be read (README, exit codes).
        failed = changed or problems or bool(report.errors)
    else:
        failed = bool(report.findings) or bool(report.errors)
    sys.exit(1 if failed and not exit_zero else 0)


def _show_settings(settings: Settings, paths: tuple[str, ...]) -> None:
    """``--show-settings``: what each path is checked with, and where each part came from."""
    for path in paths:
        source = str(settings.source) if settings.source is not None else "defaults (none found)"
        click.echo(f"{path}:")
        click.echo(f"  configuration: {source}")
        click.echo(f"  rules: {', '.join(r.code for r in settings.rules_for(path)) or 'none'}")
        click.echo(f"  compute-dtype: {settings.compute_dtype}")
        click.echo(f"  target: {settings.target_for(path).describe()}")


def _check_paths(
    settings: Settings,
    paths: tuple[str, ...],
    notebooks: bool,
    docs: bool,
    fix: bool,
    diff: bool,
    unsafe_fixes: bool,
    want_edits: bool,
    jobs: int | None,
    report: Report,
) -> None:
    from bnblint.discovery import DEFAULT_EXCLUDES, discover
    from bnblint.documents import DOCS_SUFFIXES, NOTEBOOK_SUFFIXES
    from bnblint.runner import lint_paths

    suffixes = (".py", *(NOTEBOOK_SUFFIXES if notebooks else ()))
    suffixes += DOCS_SUFFIXES if docs or settings.include_docs else ()
    files, errors = discover(
        paths,
        exclude=settings.exclude if settings.exclude is not None else DEFAULT_EXCLUDES,
        extend_exclude=settings.extend_exclude,
        suffixes=suffixes,
        root=settings.root,
    )
    report.results.extend(FileResult(str(p), error=reason) for p, reason in errors)
    results = lint_paths(
        files,
        settings,
        fix=fix or diff,
        unsafe_fixes=unsafe_fixes,
        want_edits=want_edits,
        jobs=jobs,
    )
    report.files_checked = len(files)
    roots = linted_tree(paths)  # where a symlinked file may lead a fix
    for result in results:
        if result.fixed_text is not None and not diff and result.source is not None:
            try:
                write_source(result.source, result.fixed_text, roots)
            except SourceError as exc:  # read-only, changed meanwhile, link out of the tree
                result.error = str(exc)
                result.findings = result.fixed + result.findings
                result.fixed = []
    report.results.extend(results)


def _print_diffs(report: Report) -> bool:
    changed = False
    for result in sorted(report.results, key=lambda r: r.filename):
        if result.fixed_text is None or result.source is None:
            continue
        changed = True
        sys.stdout.writelines(
            difflib.unified_diff(
                split_lines(result.source.text),
                split_lines(result.fixed_text),
                fromfile=f"a/{result.filename}",
                tofile=f"b/{result.filename}",
            )
        )
    n = sum(len(r.fixed) for r in report.results)
    if n:
        click.echo(f"\nWould fix {n} error{'s' if n != 1 else ''}.", err=True)
    for result in report.results:
        for problem in result.fix_problems:
            click.echo(f"{result.filename}: error: {problem}", err=True)
    return changed


def _check_stdin(
    settings: Settings,
    stdin_filename: str | None,
    fix: bool,
    diff: bool,
    unsafe_fixes: bool,
    report: Report,
    output_format: str,
    render: Renderer,
) -> None:
    name = stdin_filename or "-"
    try:
        text, encoding = decode(sys.stdin.buffer.read())
    except SourceError as exc:
        report.results.append(FileResult(name, error=str(exc)))
        return
    from bnblint.runner import lint_one_text

    # With --stdin-filename, the project around that path resolves the text's imports.
    result = lint_one_text(
        text,
        name,
        settings,
        fix=fix or diff,
        unsafe_fixes=unsafe_fixes,
        want_edits=wants_edits(output_format),
    )
    result.source = SourceFile(Path(name), text, encoding)  # for the formats that quote lines
    report.results.append(result)
    fixed = result.fixed_text if result.fixed_text is not None else text
    if diff:
        sys.stdout.writelines(
            difflib.unified_diff(
                split_lines(text),
                split_lines(fixed),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
        return
    if fix:
        sys.stdout.write(fixed)  # the fixed source goes to stdout, the report to stderr
        render(report, sys.stderr)
        return
    render(report, sys.stdout)


def _renderer(output_format: str, statistics: bool, annotate: bool) -> Renderer:
    """The format's renderer, or the statistics table, then GitHub annotations if asked."""
    base = get_renderer(output_format)
    if statistics:
        from bnblint.output.statistics import render_json, render_text

        base = render_json if output_format in ("json", "json-lines") else render_text
    if not annotate:
        return base
    github = get_renderer("github")

    def render(report: Report, out: TextIO) -> None:
        base(report, out)
        github(report, out)

    return render


def _add_noqa(settings: Settings, paths: tuple[str, ...], jobs: int | None) -> None:
    """Suppress every current finding with a ``# noqa`` directive on its line, then exit."""
    from bnblint.documents import DocumentError
    from bnblint.pipeline import add_noqa

    report = Report()
    _check_paths(settings, paths, True, False, False, False, False, False, jobs, report)
    added = 0
    for result in report.results:
        if not result.findings or result.source is None:
            continue
        try:
            text, n = add_noqa(result.source.text, result.filename, settings)
        except DocumentError as exc:
            result.error = f"cannot add noqa: {exc}"
            continue
        if not n:
            continue
        try:
            write_source(result.source, text, linted_tree(paths))
        except SourceError as exc:  # read-only, changed meanwhile, link out of the tree
            result.error = str(exc)
            continue
        added += n
    for result in report.errors:
        click.echo(f"{result.filename}: {result.error}", err=True)
    click.echo(f"Added {added} noqa directive{'s' if added != 1 else ''}.", err=True)
    sys.exit(1 if report.errors else 0)


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
def rule(code: str | None, show_all: bool) -> None:
    """Show the documentation of rule CODE (e.g. BNB002)."""
    if show_all or code is None:
        # Column widths from the rules themselves, so a longer name never shifts one row.
        rows = [("Code", "Name", "Level", "Fix", "Summary")]
        rows += [(r.code, r.name, r.level.value, r.fixable, r.summary) for r in ALL_RULES]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
        return
    found = RULES_BY_CODE.get(code.upper())
    if found is None:
        _fail(f"unknown rule `{code}` (known: {', '.join(RULES_BY_CODE)})")
        return
    click.echo(f"# {found.summary} ({found.code}, {found.name})\n")
    click.echo(f"Level: {found.level.value}")
    click.echo(f"Fix: {found.fixable}")
    click.echo(f"Cases: {len(found.valid)} valid, {len(found.invalid)} invalid\n")
    click.echo(found.docs.strip("\n"))


@main.command()
def server() -> None:
    """Run the language server over stdio (needs `pip install 'bnblint[lsp]'`)."""
    # Imported here: pygls must cost nothing to the other commands.
    try:
        from bnblint.lsp import serve
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in ("pygls", "lsprotocol"):
            raise
        _fail(f"`bnblint server` needs {missing}: pip install 'bnblint[lsp]'")
        return
    serve()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option(
    "--python",
    type=click.Path(exists=True, dir_okay=False),
    help="Diagnose this interpreter's environment (default: the one running bnblint).",
)
@click.option("--config", type=click.Path(), help="A pyproject.toml to read [tool.bnblint] from.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=180,
    show_default=True,
    help="Seconds each probe process may run.",
)
@click.option("--color/--no-color", default=None, help="Colour (default: on a terminal).")
def doctor(
    as_json: bool, python: str | None, config: str | None, timeout: float, color: bool | None
) -> None:
    """Check that this environment can run bitsandbytes 4-bit loads (exit 1 if a check fails)."""
    # Imported here: the doctor's probes must cost nothing to the other commands.
    from bnblint.doctor.cli import run_doctor

    sys.exit(run_doctor(as_json, python, Path(config) if config else None, timeout, color))


@main.command()
@click.argument("target", metavar="PATH[:LINE]")
@click.option("--model", help="Model id (in the local HF cache) or directory to load instead.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cuda", "cpu"]),
    default="auto",
    show_default=True,
    help="Where to load: auto is cuda when available, else cpu.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="Seconds each load process may run.",
)
@click.option(
    "--trust-remote-code",
    is_flag=True,
    help="Pass a call's trust_remote_code=True through: runs the model directory's own code.",
)
def verify(
    target: str,
    model: str | None,
    device: str,
    as_json: bool,
    timeout: float,
    trust_remote_code: bool,
) -> None:
    """Load each bitsandbytes call in PATH as written and as fixed, and compare
    (exit 1 if a fixed call does not load)."""
    # Imported here: torch and friends load in worker processes, never in this one.
    from bnblint.verify.command import run_verify

    sys.exit(
        run_verify(target, model, device, as_json, timeout, trust_remote_code=trust_remote_code)
    )


if __name__ == "__main__":  # pragma: no cover
    main()
