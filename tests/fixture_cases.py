"""Fixture cases: ``fixtures/<CODE>/<name>.py`` with ``<name>.diagnostics`` (expected report
lines, empty or absent for silent cases) and ``<name>.fixed.py`` (expected ``--fix
--unsafe-fixes`` output; absent means the fix must change nothing).

Run ``python tests/fixture_cases.py --update [BNB003 ...]`` to rewrite the expectations after a
deliberate change, then review the diff: the expectations are the specification.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnblint.pipeline import FileResult, lint_source  # noqa: E402
from bnblint.settings import Settings  # noqa: E402
from bnblint.source import read_source  # noqa: E402

FIXTURES = ROOT / "fixtures"
# The fixtures show the newest behaviour: without a target they would take bnblint's own pin
# (its pyproject.toml's optional dependencies admit transformers 4.56 too).
SETTINGS = Settings(root=FIXTURES, target_transformers="5")


SUFFIXES = (".py", ".ipynb", ".md", ".rst")


PROJECTS = FIXTURES / "projects"


def cases() -> list[Path]:
    return sorted(
        p
        for p in FIXTURES.rglob("*")
        if p.suffix in SUFFIXES and ".fixed." not in p.name and PROJECTS not in p.parents
    )


def project_cases() -> list[Path]:
    """``fixtures/projects/<name>/``: a tree with its own ``pyproject.toml``, linted as a
    project; ``<name>.diagnostics`` holds the report (paths relative to the tree) and
    ``<name>.fixed.diff`` the diff of ``--fix --unsafe-fixes`` (absent: nothing changes)."""
    return sorted(p for p in PROJECTS.iterdir() if p.is_dir())


def run_project(root: Path, named: list[str] | None = None) -> tuple[list[str], str]:
    """(report lines, unified diff of the fixes) for a project fixture; ``named``: lint only
    these files of it (as pre-commit names files), the project still around them."""
    import difflib

    from bnblint.discovery import DEFAULT_EXCLUDES, discover
    from bnblint.runner import lint_paths

    if named is None:
        files, _ = discover((str(root),), exclude=DEFAULT_EXCLUDES, suffixes=(".py",))
    else:
        files = [root / n for n in named]
    settings = Settings(root=root)

    def rel(name: str) -> str:
        return Path(name).resolve().relative_to(root.resolve()).as_posix()

    report = lint_paths(files, settings, jobs=1)
    lines = sorted(
        f"{rel(f.filename)}:{f.location.row}:{f.location.column}: {f.code} "
        f"{'[' + f.applicability.value + '] ' if f.applicability else ''}{f.message}"
        for r in report
        for f in r.findings
    )
    lines += sorted(f"{rel(r.filename)}: {r.error}" for r in report if r.error)
    fixed = lint_paths(files, settings, fix=True, unsafe_fixes=True, jobs=1)
    diff: list[str] = []
    for r in sorted(fixed, key=lambda r: rel(r.filename)):
        if r.fixed_text is None or r.source is None:
            continue
        name = rel(r.filename)
        diff.extend(
            difflib.unified_diff(
                r.source.text.splitlines(keepends=True),
                r.fixed_text.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
    return lines, "".join(diff)


def case_id(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


def diagnostics_path(path: Path) -> Path:
    return path.with_suffix(".diagnostics")


def fixed_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.fixed{path.suffix}")


def report_lines(result: FileResult) -> list[str]:
    lines = [
        f"{'' if f.cell is None else f'cell {f.cell}:'}{f.location.row}:{f.location.column}: "
        f"{f.code} "
        f"{'[' + f.applicability.value + '] ' if f.applicability else ''}{f.message}"
        for f in result.findings
    ]
    if result.error:
        lines.append(result.error)
    return lines


def run(path: Path) -> tuple[list[str], str, str]:
    """(report lines, original text, text after --fix --unsafe-fixes)."""
    source = read_source(path)
    name = case_id(path)
    report = lint_source(source.text, name, SETTINGS)
    fixed = lint_source(source.text, name, SETTINGS, fix=True, unsafe_fixes=True)
    return report_lines(report), source.text, fixed.fixed_text or source.text


def update(only: list[str]) -> None:
    for root in project_cases():
        if only and "projects" not in only and root.name not in only:
            continue
        lines, diff = run_project(root)
        root.with_suffix(".diagnostics").write_text(
            "".join(line + "\n" for line in lines), encoding="utf-8"
        )
        target = root.with_suffix(".fixed.diff")
        if diff:
            target.write_text(diff, encoding="utf-8")
        elif target.exists():
            target.unlink()
    for path in cases():
        if only and path.parent.name not in only:
            continue
        lines, text, fixed = run(path)
        diag = diagnostics_path(path)
        if lines or diag.exists():
            diag.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        target = fixed_path(path)
        if fixed != text:
            encoding = read_source(path).encoding
            target.write_bytes(fixed.encode(encoding))
        elif target.exists():
            target.unlink()


if __name__ == "__main__":
    if "--update" in sys.argv:
        # --update [DIR ...]: rewrite the expectations of these fixture folders (default: all)
        update([a for a in sys.argv[1:] if a != "--update"])
    else:
        for case in cases():
            print(case_id(case), *run(case)[0], sep="\n  ")
        for root in project_cases():
            print(f"projects/{root.name}", *run_project(root)[0], sep="\n  ")
