"""The pre-commit hooks, run by the real pre-commit from a git repository holding this tree.

pre-commit builds the hook's virtual environment with pip from PyPI, once per session
(PRE_COMMIT_HOME is session-scoped). ``pre-commit try-repo`` would not do: it makes a new
store, hence a new environment (about 25 s), on every call.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from identify.identify import tags_from_path
from pre_commit.clientlib import load_manifest

from bnblint.pipeline import lint_text
from bnblint.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / ".pre-commit-hooks.yaml"

BAD = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("m", quantization_config=quantization_config)
"""
# Notebook JSON with bitsandbytes words: parsed as Python it would be an error.
NOTEBOOK = json.dumps(
    {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
                "source": ["cfg = BitsAndBytesConfig(load_in_4bit=True)\n"],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
)


def git_env(**extra: str) -> dict[str, str]:
    """No system or user git configuration; an identity; any owner (CI runs as root)."""
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="bnblint tests",
        GIT_AUTHOR_EMAIL="tests@bnblint.invalid",
        GIT_COMMITTER_NAME="bnblint tests",
        GIT_COMMITTER_EMAIL="tests@bnblint.invalid",
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="safe.directory",
        GIT_CONFIG_VALUE_0="*",
        **extra,
    )
    return env


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnblint", *args], cwd=cwd, capture_output=True, text=True
    )


def test_manifest_is_valid_and_its_entries_are_real_options() -> None:
    hooks = {hook["id"]: hook for hook in load_manifest(str(MANIFEST))}  # pre-commit's schema
    assert set(hooks) == {"bnblint", "bnblint-fix"}
    assert hooks["bnblint"]["entry"] == "bnblint check"
    assert hooks["bnblint-fix"]["entry"] == "bnblint check --fix"
    help_text = run_cli("check", "--help", cwd=ROOT).stdout
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["types_or"] == ["python", "jupyter"]
        assert hook["require_serial"] is True and hook["pass_filenames"] is True
        for word in hook["entry"].split()[2:]:
            assert word in help_text
    # the raw file is plain YAML too (what pre-commit's older versions read)
    assert [h["id"] for h in yaml.safe_load(MANIFEST.read_text())] == list(hooks)


def test_named_notebooks_are_linted(tmp_path: Path) -> None:
    # The hooks pass notebooks (types_or: jupyter): they are linted, cell by cell.
    (tmp_path / "nb.ipynb").write_text(NOTEBOOK)
    (tmp_path / "bad.py").write_text(BAD)
    alone = run_cli("check", "nb.ipynb", cwd=tmp_path)
    assert alone.returncode == 0 and alone.stderr == ""  # a config reaching no load: silent
    loading = NOTEBOOK.replace("cfg = ", "m = X.from_pretrained('m', quantization_config=")
    (tmp_path / "nb.ipynb").write_text(loading.replace('True)\\n"', 'True))\\n"'))
    both = run_cli("check", "--output-format", "json", "nb.ipynb", "bad.py", cwd=tmp_path)
    assert both.returncode == 1 and both.stderr == ""
    found = {(Path(f["filename"]).name, f["cell"]) for f in json.loads(both.stdout)}
    assert ("nb.ipynb", 1) in found and ("bad.py", None) in found


def test_no_files_exits_0(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = run_cli("check", "empty", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")


@pytest.fixture(scope="session")
def hooks_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git repository holding what pip needs from this working tree, committed: pre-commit
    clones hook repositories at a revision, and uncommitted work must be tested too."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("hooks-repo")
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, repo / name)
    for licence in ROOT.glob("LICEN[CS]E*"):
        shutil.copy2(licence, repo / licence.name)
    shutil.copytree(
        ROOT / "bnblint", repo / "bnblint", ignore=shutil.ignore_patterns("__pycache__")
    )
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "snapshot", cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo)


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(tmp_path: Path, hooks_repo: tuple[Path, str]) -> Iterator[Path]:
    repo, rev = hooks_repo
    (tmp_path / "project").mkdir()
    project = tmp_path / "project"
    (project / "bad.py").write_text(BAD)
    (project / "ok.py").write_text("print('hello')\n")
    (project / "nb.ipynb").write_text(NOTEBOOK)
    config = {
        "repos": [
            {"repo": str(repo), "rev": rev, "hooks": [{"id": "bnblint"}, {"id": "bnblint-fix"}]}
        ]
    }
    (tmp_path / "pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    yield project


def pre_commit(hook: str, project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    config = project.parent / "pre-commit-config.yaml"
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", hook, "--all-files", "-c", str(config)],
        cwd=project,
        env=git_env(PRE_COMMIT_HOME=str(home), PRE_COMMIT_COLOR="never"),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_check_fails_fix_fixes_then_both_pass(project: Path, pre_commit_home: Path) -> None:
    check = pre_commit("bnblint", project, pre_commit_home)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "bad.py:3:23: BNB002" in check.stdout and "bad.py:4:9: BNB001" in check.stdout
    # pre-commit passes the notebook (a `jupyter` file) to the hook, which lints it: its config
    # reaches no load, so there is nothing to report
    assert "jupyter" in tags_from_path(str(project / "nb.ipynb"))
    assert "nb.ipynb" not in check.stdout

    fix = pre_commit("bnblint-fix", project, pre_commit_home)
    assert fix.returncode == 1, fix.stdout + fix.stderr
    assert "files were modified by this hook" in fix.stdout
    expected = lint_text(BAD, "bad.py", Settings(), fix=True).fixed_text
    assert expected is not None and (project / "bad.py").read_text() == expected

    for hook in ("bnblint-fix", "bnblint"):
        again = pre_commit(hook, project, pre_commit_home)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Passed" in again.stdout


@pytest.mark.slow
def test_try_repo(project: Path, hooks_repo: tuple[Path, str], tmp_path: Path) -> None:
    """The real `pre-commit try-repo` (it builds its own environment, about 25 s): the check
    hook fails on the bad file, the fix hook rewrites it."""
    repo, rev = hooks_repo
    env = git_env(PRE_COMMIT_HOME=str(tmp_path / "home"), PRE_COMMIT_COLOR="never")

    def try_repo(hook: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pre_commit",
                "try-repo",
                str(repo),
                hook,
                "--ref",
                rev,
                "--all-files",
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    check = try_repo("bnblint")
    assert check.returncode == 1 and "bad.py:3:23: BNB002" in check.stdout, check.stdout
    fix = try_repo("bnblint-fix")
    assert fix.returncode == 1 and "files were modified by this hook" in fix.stdout, fix.stdout
    assert 'device_map="auto"' in (project / "bad.py").read_text()
