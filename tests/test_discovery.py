from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnblint.discovery import DEFAULT_EXCLUDES, discover, glob_excludes

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")


def make(base: Path, *files: str, text: dict[str, str] | None = None) -> None:
    """Create empty ``files`` and files with the given ``text`` under ``base``."""
    for rel in files:
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    for rel, content in (text or {}).items():
        write(base / rel, content)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def rels(files: list[Path], base: Path) -> list[str]:
    return [p.relative_to(base).as_posix() for p in files]


def run_discover(base: Path, *args: str, **kwargs: object) -> list[str]:
    files, errors = discover([base / a for a in args] or [base], **kwargs)  # type: ignore[arg-type]
    assert errors == []
    return rels(files, base)


def git_env(tmp: Path) -> dict[str, str]:
    """An environment in which no user/system git configuration leaks in."""
    home = tmp / "_home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("GIT_"):
            del env[key]
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
    )
    return env


def git(repo: Path, *args: str) -> str:
    assert GIT is not None
    res = subprocess.run(
        [GIT, "-c", "core.excludesFile=", *args],
        cwd=repo,
        env=git_env(repo.parent),
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout


def git_init(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q")


# ---------------------------------------------------------------------------------------------
# Explicit paths, excludes, results
# ---------------------------------------------------------------------------------------------


def test_default_excludes_value() -> None:
    assert ".venv" in DEFAULT_EXCLUDES
    assert "*.egg-info" in DEFAULT_EXCLUDES
    assert len(DEFAULT_EXCLUDES) == len(set(DEFAULT_EXCLUDES)) == 19


def test_explicit_file_always_returned(tmp_path: Path) -> None:
    make(
        tmp_path,
        "script.txt",
        "build/gen.cfg",
        "noext",
        "ignored.py",
        text={".gitignore": "ignored.py\nscript.txt\n"},
    )
    (tmp_path / ".git").mkdir()
    files, errors = discover(
        [tmp_path / "script.txt", tmp_path / "build/gen.cfg", tmp_path / "noext"]
        + [tmp_path / "ignored.py"],
        extend_exclude=["*.txt", "noext"],
    )
    assert errors == []
    assert rels(files, tmp_path) == ["build/gen.cfg", "ignored.py", "noext", "script.txt"]


def test_walk_filters_by_suffix(tmp_path: Path) -> None:
    make(tmp_path, "a.py", "b.pyi", "c.txt", "d.py.bak", "sub/e.py", "sub/f.pyi")
    assert run_discover(tmp_path) == ["a.py", "sub/e.py"]
    assert run_discover(tmp_path, suffixes=(".py", ".pyi")) == [
        "a.py",
        "b.pyi",
        "sub/e.py",
        "sub/f.pyi",
    ]


def test_default_excludes_pruned(tmp_path: Path) -> None:
    make(
        tmp_path,
        "src/ok.py",
        ".venv/lib/a.py",
        "venv/a.py",
        "build/b.py",
        "src/build/b.py",
        "node_modules/pkg/c.py",
        "foo.egg-info/d.py",
        "src/__pycache__/e.py",
        ".tox/py/f.py",
        "lib/site-packages/g.py",
        "build.py",  # a *file* named like an excluded dir is still a file; "build" != "build.py"
    )
    assert run_discover(tmp_path) == ["build.py", "src/ok.py"]
    # excludes do not apply to an explicitly named directory (like ruff) ...
    assert run_discover(tmp_path, "build") == ["build/b.py"]
    assert run_discover(tmp_path, ".venv") == [".venv/lib/a.py"]
    # ... but still apply inside it
    assert run_discover(tmp_path, "src") == ["src/ok.py"]
    # exclude=() disables the defaults
    assert len(run_discover(tmp_path, exclude=())) == 11


def test_extend_exclude_by_name_and_anchored_path(tmp_path: Path) -> None:
    make(
        tmp_path,
        "src/pkg/mod.py",
        "src/pkg/gen_a.py",
        "src/pkg/deep/gen_b.py",
        "src/gen_c.py",
        "other/gen_d.py",
        "tests/fixtures/x.py",
        "tests/data/y.py",
        "tests/test_z.py",
        "other/tests/data/w.py",
        "lib/fixtures/v.py",
        "build/u.py",
    )
    files, errors = discover(
        [tmp_path],
        extend_exclude=["fixtures", "tests/data", "src/**/gen_*.py"],
        root=tmp_path,
    )
    assert errors == []
    assert rels(files, tmp_path) == [
        "other/gen_d.py",
        "other/tests/data/w.py",  # anchored to root: only tests/data at the top matches
        "src/pkg/mod.py",
        "tests/test_z.py",
    ]
    # extend_exclude adds to, exclude replaces, the defaults
    files, _ = discover([tmp_path], exclude=["tests"], root=tmp_path)
    assert "build/u.py" in rels(files, tmp_path)
    assert not any(r.startswith("tests/") for r in rels(files, tmp_path))


def test_anchored_exclude_relative_to_cwd_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(tmp_path, "proj/tests/fixtures/x.py", "proj/tests/t.py")
    monkeypatch.chdir(tmp_path / "proj")
    files, _ = discover(["tests"], extend_exclude=["tests/fixtures"])
    assert files == [Path("tests/t.py")]
    monkeypatch.chdir(tmp_path)
    files, _ = discover(["proj"], extend_exclude=["tests/fixtures"])  # root=cwd: no match
    assert files == [Path("proj/tests/fixtures/x.py"), Path("proj/tests/t.py")]


def test_dir_only_exclude(tmp_path: Path) -> None:
    make(tmp_path, "gen/a.py", "x/gen", "gen.py")
    assert run_discover(tmp_path, exclude=["gen/"], suffixes=("",)) == ["gen.py", "x/gen"]


def test_given_relative_paths_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, "src/a.py", "src/pkg/b.py")
    monkeypatch.chdir(tmp_path)
    files, errors = discover(["src"])
    assert errors == []
    assert files == [Path("src/a.py"), Path("src/pkg/b.py")]
    assert not any(p.is_absolute() for p in files)
    files, _ = discover(["."])
    assert files == [Path("src/a.py"), Path("src/pkg/b.py")]
    files, _ = discover([str(tmp_path / "src")])
    assert files == [tmp_path / "src/a.py", tmp_path / "src/pkg/b.py"]


def test_sorted_and_deduplicated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, "a/b.py", "a/c/d.py", "a/a.py", "z.py", "a/c.py")
    monkeypatch.chdir(tmp_path)
    files, errors = discover(["z.py", "a", "a/b.py", "./a", "a/c", "a/../a/b.py"])
    assert errors == []
    # Path order compares component by component: "a/c/d.py" < "a/c.py" ("c" < "c.py")
    assert files == [
        Path("a/a.py"),
        Path("a/b.py"),
        Path("a/c/d.py"),
        Path("a/c.py"),
        Path("z.py"),
    ]
    assert files == sorted(files)


def test_nonexistent_path_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, "a.py")
    monkeypatch.chdir(tmp_path)
    files, errors = discover(["missing", "a.py", "nodir/x.py"])
    assert files == [Path("a.py")]
    assert errors == [
        (Path("missing"), "No such file or directory"),
        (Path("nodir/x.py"), "No such file or directory"),
    ]


def test_not_a_directory_error(tmp_path: Path) -> None:
    make(tmp_path, "a.py")
    files, errors = discover([tmp_path / "a.py" / "x.py"])
    assert files == []
    assert len(errors) == 1
    assert errors[0][0] == tmp_path / "a.py" / "x.py"
    assert "\n" not in errors[0][1] and errors[0][1]


def test_invalid_path_error(tmp_path: Path) -> None:
    files, errors = discover([str(tmp_path / "a\0b.py")])
    assert files == []
    assert [e[1] for e in errors] == ["embedded null byte"]


def test_unreadable_directory_error(tmp_path: Path) -> None:
    make(tmp_path, "ok/a.py", "locked/b.py", "z.py")
    locked = tmp_path / "locked"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("permissions are not enforced (running as root?)")
        files, errors = discover([tmp_path])
        assert rels(files, tmp_path) == ["ok/a.py", "z.py"]
        assert errors == [(locked, "Permission denied")]
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinked_dirs_not_followed(tmp_path: Path) -> None:
    make(tmp_path, "real/a.py")
    try:
        (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
        (tmp_path / "alias.py").symlink_to(tmp_path / "real/a.py")
        (tmp_path / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    except OSError:
        pytest.skip("cannot create symlinks")
    assert run_discover(tmp_path) == ["alias.py", "real/a.py"]
    # an explicitly named symlinked directory is walked
    assert run_discover(tmp_path, "link") == ["link/a.py"]


# ---------------------------------------------------------------------------------------------
# .gitignore semantics
# ---------------------------------------------------------------------------------------------


def test_nested_gitignore_negation_and_precedence(tmp_path: Path) -> None:
    make(
        tmp_path,
        "keep.py",
        "a.py",
        "pkg/keep.py",
        "pkg/drop.py",
        "pkg/sub/keep.py",
        "pkg/sub/drop.py",
        "other/keep.py",
        text={".gitignore": "keep.py\n", "pkg/.gitignore": "*.py\n!keep.py\n"},
    )
    # root: keep.py ignored everywhere; pkg/.gitignore is deeper and re-includes keep.py below it
    assert run_discover(tmp_path) == ["a.py", "pkg/keep.py", "pkg/sub/keep.py"]
    assert run_discover(tmp_path, respect_gitignore=False) == [
        "a.py",
        "keep.py",
        "other/keep.py",
        "pkg/drop.py",
        "pkg/keep.py",
        "pkg/sub/drop.py",
        "pkg/sub/keep.py",
    ]


def test_cannot_reinclude_below_excluded_dir(tmp_path: Path) -> None:
    make(
        tmp_path,
        "out/keep.py",
        "out/x.py",
        "lib/keep.py",
        "lib/x.py",
        "lib/in/y.py",
        text={".gitignore": "out/\n!out/keep.py\nlib/*\n!lib/keep.py\n!lib/in/\n"},
    )
    assert run_discover(tmp_path) == ["lib/in/y.py", "lib/keep.py"]


def test_dir_only_pattern(tmp_path: Path) -> None:
    make(
        tmp_path,
        "gen/x.py",
        "sub/gen/y.py",
        "other/gen",  # a file: not matched by "gen/"
        "gen.py",
        text={".gitignore": "gen/\n"},
    )
    assert run_discover(tmp_path, suffixes=("",)) == [".gitignore", "gen.py", "other/gen"]


def test_anchored_vs_unanchored(tmp_path: Path) -> None:
    make(
        tmp_path,
        "top.py",
        "sub/top.py",
        "sub/mid.py",
        "x/sub/mid.py",
        "other.py",
        "sub/other.py",
        "sub/deeper/other.py",
        "sub/deeper/top.py",
        text={".gitignore": "/top.py\nsub/mid.py\n", "sub/.gitignore": "other.py\n"},
    )
    assert run_discover(tmp_path) == [
        "other.py",
        "sub/deeper/top.py",
        "sub/top.py",
        "x/sub/mid.py",
    ]
    (tmp_path / ".gitignore").write_text("top.py\n")
    assert run_discover(tmp_path) == ["other.py", "sub/mid.py", "x/sub/mid.py"]


def test_double_star_patterns(tmp_path: Path) -> None:
    make(
        tmp_path,
        "cache/a.py",
        "x/cache/b.py",
        "x/y/cache/c.py",
        "x/y/cache/sub/d.py",
        "a/z.py",
        "a/b/z.py",
        "a/b/c/z.py",
        "b/a/z.py",
        "logs/l.py",
        "logs/deep/l.py",
        "logs.py",
        "qxxr.py",
        "q/r.py",
        text={".gitignore": "**/cache/*.py\na/**/z.py\nlogs/**\nq**r.py\n"},
    )
    assert run_discover(tmp_path) == ["b/a/z.py", "logs.py", "q/r.py", "x/y/cache/sub/d.py"]


def test_escapes_classes_and_trailing_spaces(tmp_path: Path) -> None:
    make(
        tmp_path,
        "#hash.py",
        "!bang.py",
        "sp .py",
        "sp.py",
        "tr.py",
        "a1.py",
        "b1.py",
        "c1.py",
        "d9.py",
        "x].py",
        text={
            ".gitignore": (
                "# a comment\n"
                "\n"
                "\\#hash.py\n"
                "\\!bang.py\n"
                "sp\\ .py\n"
                "tr.py   \n"
                "[ab]1.py\n"
                "[!a-c][[:digit:]].py\n"
                "x[]].py\n"
            )
        },
    )
    assert run_discover(tmp_path) == ["c1.py", "sp.py"]


def test_ancestor_gitignore_inside_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make(
        repo,
        "src/a.py",
        "src/a_pb2.py",
        "src/skip/b.py",
        "src/pkg/skip/c.py",
        "src/pkg/d.py",
        "src/pkg/local.py",
        "src/pkg/x_pb2.py",
        text={".gitignore": "*_pb2.py\n/src/skip/\n", "src/.gitignore": "pkg/local.py\n"},
    )
    (repo / ".git").mkdir()
    files, errors = discover([repo / "src" / "pkg"])
    assert errors == []
    assert rels(files, repo) == ["src/pkg/d.py", "src/pkg/skip/c.py"]
    files, _ = discover([repo / "src"])
    assert rels(files, repo) == ["src/a.py", "src/pkg/d.py", "src/pkg/skip/c.py"]


def test_ancestor_gitignore_not_used_outside_repo(tmp_path: Path) -> None:
    make(
        tmp_path,
        "proj/a.py",
        "proj/b.py",
        text={".gitignore": "a.py\n", "proj/.gitignore": "b.py\n"},
    )
    # no .git anywhere above: only .gitignore files from the walked dir downward count
    assert run_discover(tmp_path, "proj") == ["proj/a.py"]
    assert run_discover(tmp_path) == []


def test_git_info_exclude(tmp_path: Path) -> None:
    make(
        tmp_path,
        "secret.py",
        "public.py",
        "sub/secret.py",
        "sub/other.py",
        text={".git/info/exclude": "secret.py\nother.py\n"},
    )
    assert run_discover(tmp_path) == ["public.py"]
    assert run_discover(tmp_path, "sub") == []
    # any .gitignore takes precedence over info/exclude
    write(tmp_path / "sub/.gitignore", "!other.py\n")
    assert run_discover(tmp_path) == ["public.py", "sub/other.py"]


def test_nested_repository_has_its_own_rules(tmp_path: Path) -> None:
    make(
        tmp_path,
        "a.py",
        "b.py",
        "inner/b.py",
        "inner/c.py",
        text={".gitignore": "b.py\n", "inner/.gitignore": "c.py\n"},
    )
    (tmp_path / ".git").mkdir()
    (tmp_path / "inner/.git").mkdir()
    assert run_discover(tmp_path, "inner") == ["inner/b.py"]
    assert run_discover(tmp_path) == ["a.py", "inner/b.py"]


def test_gitignore_with_bom_crlf_and_invalid_patterns(tmp_path: Path) -> None:
    make(tmp_path, "a.py", "b.py", "c.py", "[x.py", "d\\.py")
    (tmp_path / ".gitignore").write_bytes(b"\xef\xbb\xbfa.py\r\nb.py\r\n[x.py\nd\\\n")
    # "[x.py" (unclosed class) and "d\\" (trailing backslash) never match, as in git
    assert run_discover(tmp_path) == ["[x.py", "c.py", "d\\.py"]


def test_respect_gitignore_false_still_applies_excludes(tmp_path: Path) -> None:
    make(tmp_path, "a.py", "build/b.py", text={".gitignore": "*.py\n"})
    assert run_discover(tmp_path, respect_gitignore=False) == ["a.py"]


# ---------------------------------------------------------------------------------------------
# Agreement with git itself
# ---------------------------------------------------------------------------------------------

TRICKY_TREE = [
    "top.py",
    "keep.py",
    "debug.log",
    "important.log",
    "gen/a.py",
    "src/gen/b.py",
    "src/gen.txt",
    "other/gen",
    "x/deep/y/z.pyc",
    "x/deep/z.pyc",
    "deep/q.pyc",
    "x/notdeep/z.pyc",
    "foo/baz.py",
    "foo/bar/baz.py",
    "foo/bar/qux/baz.py",
    "xfoo/baz.py",
    "a/b/keep.txt",
    "a/b/other.txt",
    "a/c/x.txt",
    "a/top.txt",
    "#hash.py",
    "!bang.py",
    "trail ",
    "trail",
    "spaces.tmp",
    "doc/b.txt",
    "doc/x/b.txt",
    "doc/x/y/b.txt",
    "ax1.dat",
    "dx1.dat",
    "xa.dat",
    "xd.dat",
    "x1y.dat",
    "xay.dat",
    "]z.dat",
    "az.dat",
    "-z.dat",
    "mid/one/file.txt",
    "mid/one/two/file.txt",
    "mid/file.txt",
    "p/node/n.js",
    "node",
    "ws/keep.py",
    "ws/other.py",
    "dirs/top.txt",
    "dirs/in/f.txt",
    "dirs/out/f.txt",
    "qabr.txt",
    "qa/br.txt",
    "sub/top.py",
    "sub/x/top.py",
    "sub/keep.py",
    "sub/drop.py",
    "sub/x/keep.py",
    "sub/x/drop.py",
    "sub/debug.log",
    "sub/anch.txt",
    "sub/x/anch.txt",
    "sub/x/mid/one/file.txt",
    "sub/x/pat/only.txt",
    "sub/x/pat/sub/only.txt",
    "any/star/x.cfg",
    "star.cfg",
    "Q.cfg",
    "q.cfg",
]

TRICKY_ROOT_GITIGNORE = "\n".join(
    [
        "# a comment; the next line is blank",
        "",
        "*.log",
        "!important.log",
        "/top.py",
        "gen/",
        "**/deep/**/*.pyc",
        "foo/**/baz.py",
        "a/**",
        "!a/b/",
        "!a/b/keep.txt",
        "\\#hash.py",
        "\\!bang.py",
        "trail\\ ",
        "spaces.tmp   ",
        "doc/**/b.txt",
        "[abc]x?.dat",
        "x[!a-c].dat",
        "x[[:digit:]]y.dat",
        "[]]z.dat",
        "[a-]z.dat",
        "mid/*/file.txt",
        "**/node/",
        "ws",
        "!ws/keep.py",
        "dirs/*",
        "!dirs/in/",
        "q**r.txt",
        "[[:upper:]].cfg",
        "**/star/**",
        "",
    ]
)

TRICKY_SUB_GITIGNORE = """\
*.py
!keep.py
/anch.txt
!debug.log
top.py
x/pat/**/only.txt
"""


def _tricky_repo(repo: Path) -> None:
    git_init(repo)
    make(
        repo,
        *TRICKY_TREE,
        text={".gitignore": TRICKY_ROOT_GITIGNORE, "sub/.gitignore": TRICKY_SUB_GITIGNORE},
    )
    write(repo / ".git/info/exclude", "# git's template comment\n*.cfg\n!star.cfg\n")


def _git_untracked(repo: Path, *pathspec: str) -> list[str]:
    out = git(repo, "ls-files", "--others", "--exclude-standard", "-z", "--", *pathspec)
    return sorted(p for p in out.split("\0") if p)


def _ours(repo: Path, start: Path) -> list[str]:
    files, errors = discover([start], exclude=(), suffixes=("",))
    assert errors == []
    return sorted(p.relative_to(repo).as_posix() for p in files)


@needs_git
def test_matches_git_ls_files_on_tricky_patterns(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _tricky_repo(repo)
    expected = _git_untracked(repo)
    # sanity: the pattern set really does exclude and re-include things
    assert "a/b/keep.txt" in expected and "a/b/other.txt" not in expected
    assert "sub/debug.log" in expected and "debug.log" not in expected
    assert len(expected) < len(TRICKY_TREE) // 2
    assert _ours(repo, repo) == expected


@needs_git
@pytest.mark.parametrize("sub", ["sub", "sub/x", "a/b", "dirs/in", "x"])
def test_matches_git_ls_files_from_subdirectory(tmp_path: Path, sub: str) -> None:
    repo = tmp_path / "repo"
    _tricky_repo(repo)
    assert _ours(repo, repo / sub) == _git_untracked(repo, sub)


@needs_git
def test_matches_git_check_ignore(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _tricky_repo(repo)
    # check-ignore reports every path in the tree that git considers ignored (including
    # paths below ignored directories); none of them may be found by discover().
    res = subprocess.run(
        [GIT or "git", "-c", "core.excludesFile=", "check-ignore", "--stdin", "-z"],
        cwd=repo,
        env=git_env(tmp_path),
        input="\0".join(TRICKY_TREE),
        capture_output=True,
        text=True,
    )
    assert res.returncode in (0, 1), res.stderr
    ignored = {p for p in res.stdout.split("\0") if p}
    found = set(_ours(repo, repo))
    assert ignored, "git ignored nothing: the test is not testing anything"
    assert found.isdisjoint(ignored)
    assert found | ignored >= set(TRICKY_TREE)


@needs_git
def test_real_git_repo_ancestor_gitignore(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git_init(repo)
    make(
        repo,
        "pkg/mod.py",
        "pkg/mod_pb2.py",
        "pkg/vendored/x.py",
        "pkg/inner/y.py",
        text={".gitignore": "*_pb2.py\n/pkg/vendored/\n"},
    )
    files, errors = discover([repo / "pkg"])
    assert errors == []
    assert rels(files, repo) == ["pkg/inner/y.py", "pkg/mod.py"]
    assert rels(files, repo) == [p for p in _git_untracked(repo) if p.endswith(".py")]


def test_walk_is_fast_enough() -> None:
    # Smoke-test speed on the installed packages of this interpreter (when there is a sizeable
    # tree); the real target is tens of milliseconds for ~3000 files, allow a lot of slack.
    import sysconfig
    import time

    purelib = Path(sysconfig.get_paths()["purelib"])
    if not purelib.is_dir():
        pytest.skip("no site-packages")
    start = time.perf_counter()
    files, _ = discover([purelib])
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0 + len(files) / 1000
    assert all(p.suffix == ".py" for p in files)
    assert sys.version_info >= (3, 9)


_FUZZ_NAMES = ["a", "b", "ab", "a.py", "b.py", "x.txt", "[a]", "a b", "ba", "-", "]", "#c", "!d"]
_FUZZ_TOKENS = [
    *("a", "b", "d", "x", ".", "-", ".py", " ", "!", "#", "/", "d/", "/d", "e/"),
    *("*", "**", "?", "**/", "/**", "[ab]", "[!a]", "[^b]", "[a-b]", "[]a]", "[[:alpha:]]"),
    *("\\*", "\\ ", "\\#", "\\!", "[", "\\", "[:", "]"),
]


def _fuzz_pattern(rng: random.Random) -> str:
    pat = "".join(rng.choice(_FUZZ_TOKENS) for _ in range(rng.randint(1, 5)))
    if rng.random() < 0.25:
        pat = "!" + pat
    if rng.random() < 0.2:
        pat = "/" + pat
    if rng.random() < 0.2:
        pat += "/"
    return pat


@needs_git
def test_matches_git_on_random_pattern_sets(tmp_path: Path) -> None:
    """Random trees and pattern sets (fixed seeds) must give exactly git's answer."""
    repo = tmp_path / "repo"
    git_init(repo)
    ignored_something = 0
    for seed in range(12):
        rng = random.Random(seed)
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        for _ in range(30):
            parts = [rng.choice(["a", "b", "d", "e", "a.py"]) for _ in range(rng.randint(0, 3))]
            path = repo.joinpath(*parts, rng.choice(_FUZZ_NAMES))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            except OSError:  # a file already exists where a directory is wanted
                pass
        dirs = sorted(
            p.relative_to(repo).as_posix()
            for p in repo.rglob("*")
            if p.is_dir() and ".git" not in p.relative_to(repo).parts
        )
        ignore_files = ["."] + rng.sample(dirs, min(len(dirs), rng.randint(0, 2)))
        for d in ignore_files:
            lines = [_fuzz_pattern(rng) for _ in range(rng.randint(1, 6))]
            write(repo / d / ".gitignore", "\n".join(lines) + "\n")
        write(repo / ".git/info/exclude", _fuzz_pattern(rng) + "\n")
        ours = _ours(repo, repo)
        assert ours == _git_untracked(repo), f"seed {seed}"
        everything = [p for p in repo.rglob("*") if ".git" not in p.relative_to(repo).parts]
        ignored_something += len(ours) < sum(p.is_file() for p in everything)
    assert ignored_something >= 6


# ---------------------------------------------------------------------------------------------
# glob_excludes: the exclude dialect as a predicate (per-file-ignores use it)
# ---------------------------------------------------------------------------------------------


def test_glob_excludes_examples() -> None:
    assert glob_excludes("src/*.py", "src/a.py", "a.py")
    assert not glob_excludes("src/*.py", "src/a/b.py", "b.py")  # fnmatch said yes
    assert glob_excludes("**/x.py", "x.py", "x.py")
    assert glob_excludes("**/x.py", "a/b/x.py", "x.py")
    assert glob_excludes("tests/*", "tests/sub/a.py", "a.py")  # via the directory tests/sub
    assert glob_excludes("tests/", "tests/a.py", "a.py")
    assert not glob_excludes("a.py/", "a.py", "a.py")  # directories only
    assert glob_excludes("*.py", None, "a.py")  # outside the root: names only
    assert not glob_excludes("src/*.py", None, "a.py")


def test_glob_excludes_agrees_with_discover(tmp_path: Path) -> None:
    """For every tree file and pattern (fixed seeds), ``glob_excludes`` says "excluded"
    exactly when ``discover(exclude=[pattern])`` leaves the file out."""
    make(tmp_path, *TRICKY_TREE)
    every = run_discover(
        tmp_path, exclude=(), suffixes=("",), respect_gitignore=False, root=tmp_path
    )
    rng = random.Random(9)
    patterns = [p.lstrip("!") for p in TRICKY_ROOT_GITIGNORE.splitlines() if p and p[0] != "#"]
    patterns += [_fuzz_pattern(rng).lstrip("!") for _ in range(300)]
    excluded_some = 0
    for pattern in patterns:
        kept = set(
            run_discover(
                tmp_path, exclude=(pattern,), suffixes=("",), respect_gitignore=False, root=tmp_path
            )
        )
        for rel in every:
            assert glob_excludes(pattern, rel, rel.rsplit("/", 1)[-1]) == (rel not in kept), (
                pattern,
                rel,
            )
        excluded_some += len(kept) < len(every)
    assert excluded_some > 50
