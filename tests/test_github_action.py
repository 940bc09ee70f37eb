"""The composite GitHub Action (``action.yml``): its shape, and its shell steps run with bash
the way the runner runs them (``bash --noprofile --norc -eo pipefail``), with the install step
replaced by this environment's bnblint (installing from PyPI is the pre-commit test's job)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bnblint.output import FORMAT_NAMES

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
STEPS: list[dict[str, Any]] = ACTION["runs"]["steps"]

BAD = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("m", quantization_config=quantization_config)
"""


def step(step_id: str) -> dict[str, Any]:
    (found,) = [s for s in STEPS if s.get("id") == step_id]
    return found


def test_inputs_and_steps() -> None:
    inputs = ACTION["inputs"]
    assert {k: v["default"] for k, v in inputs.items()} == {
        "args": "check",
        "src": ".",
        "version": "",
        "sarif-file": "",
    }
    assert all(v["description"] and v["required"] is False for v in inputs.values())
    assert ACTION["runs"]["using"] == "composite"
    for s in STEPS:
        assert ("uses" in s) != ("run" in s)
        if "run" in s:
            assert s["shell"] == "bash"  # composite run steps must name their shell
            # Inputs reach scripts through env only: `${{ }}` in a script is injectable.
            assert "${{" not in s["run"]
    setup = step("setup-python")
    assert setup["uses"].startswith("actions/setup-python@")
    assert setup["if"] == "steps.python.outputs.needed == 'true'"
    assert 'spec="$ACTION_PATH"' in step("install")["run"]
    assert 'spec="bnblint==$BNBLINT_VERSION"' in step("install")["run"]


def test_scripts_use_only_real_cli_options() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "bnblint", "check", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    options = set(re.findall(r"--[a-z][a-z-]*", help_text))
    script = step("run")["run"]
    calls = [line for line in script.splitlines() if '"$BNBLINT"' in line]
    assert calls
    for line in calls:
        for option in re.findall(r"(?<!\S)--[a-z][a-z-]*", line):
            assert option in options, line
        for value in re.findall(r"--output-format (\S+)", line):
            assert value in FORMAT_NAMES, line
    for s in STEPS:
        if "run" in s:
            subprocess.run(["bash", "-n", "-c", s["run"]], check=True)


def _evaluate(expression: str, context: dict[str, Any]) -> Any:
    """The few expression forms action.yml uses: `a.b.c`, `x || y`, `x == 'literal'`."""
    expression = expression.strip()
    if "==" in expression:
        left, right = expression.split("==")
        return _evaluate(left, context) == right.strip().strip("'")
    for part in expression.split("||"):
        value: Any = context
        for key in part.strip().split("."):
            value = value.get(key, "") if isinstance(value, dict) else ""
        if value:
            return value
    return ""


def run_action(inputs: dict[str, str], workspace: Path, tmp: Path) -> tuple[int, str]:
    """Run the action's steps in ``workspace``; (exit status of the last step run, stdout)."""
    bnblint = shutil.which("bnblint", path=str(Path(sys.executable).parent))
    assert bnblint is not None
    defaults = {k: v["default"] for k, v in ACTION["inputs"].items()}
    context: dict[str, Any] = {
        "inputs": {**defaults, **inputs},
        "github": {"action_path": str(ROOT)},
        "steps": {},
    }
    status, stdout = 0, ""
    for s in STEPS:
        if "if" in s and not _evaluate(s["if"], context):
            continue
        assert "run" in s, f"this machine has Python 3.9+: {s} must not run"
        if s["id"] == "install":
            context["steps"]["install"] = {"outputs": {"bnblint": bnblint}}
            continue
        output = tmp / f"{s['id']}.output"
        output.write_text("")
        env = {
            "PATH": f"{Path(bnblint).parent}:/usr/bin:/bin",
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(output),
            "RUNNER_TEMP": str(tmp),
            "NO_COLOR": "1",
        }
        for key, value in s.get("env", {}).items():
            env[key] = re.sub(
                r"\$\{\{(.*?)\}\}", lambda m: str(_evaluate(m.group(1), context)), value
            )
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", s["run"]],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = output.read_text().splitlines()
        context["steps"][s["id"]] = {"outputs": dict(line.split("=", 1) for line in lines)}
        status, stdout = proc.returncode, proc.stdout
        if status != 0:
            break
    return status, stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "src").mkdir(parents=True)
    (tmp_path / "ws" / "src" / "train.py").write_text(BAD)
    (tmp_path / "ws" / "ok.py").write_text("print('hello')\n")
    return tmp_path / "ws"


def test_findings_fail_the_step_and_become_annotations(workspace: Path, tmp_path: Path) -> None:
    status, out = run_action({}, workspace, tmp_path)
    assert status == 1
    assert "src/train.py:4:9: BNB001" in out  # the readable log
    annotations = [line for line in out.splitlines() if line.startswith("::")]
    assert len(annotations) == 2
    assert all(re.match(r"::(warning|error) .*file=src/train\.py,line=\d+", a) for a in annotations)


def test_sarif_file_is_written_and_the_status_kept(workspace: Path, tmp_path: Path) -> None:
    status, _ = run_action({"sarif-file": "reports/bnblint.sarif"}, workspace, tmp_path)
    assert status == 1
    sarif = json.loads((workspace / "reports" / "bnblint.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert {r["ruleId"] for run in sarif["runs"] for r in run["results"]} == {"BNB001", "BNB002"}


def test_clean_source_passes_and_args_are_passed(workspace: Path, tmp_path: Path) -> None:
    assert run_action({"src": "ok.py"}, workspace, tmp_path)[0] == 0
    status, out = run_action(
        {"args": "check --select BNB001 --output-format json"}, workspace, tmp_path
    )
    assert status == 1
    assert [f["code"] for f in json.loads(out)] == ["BNB001"]  # no annotations mixed in


def test_readme_snippets_match_the_action_and_the_hooks() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Integrations", 1)[1].split("\n## ", 1)[0]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    hook_ids = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    used_hooks = [h["id"] for b in blocks for repo in b.get("repos", []) for h in repo["hooks"]]
    assert used_hooks and set(used_hooks) <= hook_ids
    uses = [
        s
        for b in blocks
        for job in b.get("jobs", {}).values()
        for s in job["steps"]
        if s.get("uses", "").startswith("<owner>/bnblint@")
    ]
    assert len(uses) == 2
    for s in uses:
        assert set(s.get("with", {})) <= set(ACTION["inputs"])
    (gitlab,) = [b["bnblint"] for b in blocks if "bnblint" in b]
    assert gitlab["artifacts"]["reports"]["codequality"] == "gl-code-quality-report.json"
    assert any("--output-format gitlab" in line for line in gitlab["script"])
    assert "gitlab" in FORMAT_NAMES
