"""The CLI, driven through click's runner and, for the installed script, a real process."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bnblint.cli import main

BAD = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("m", quantization_config=quantization_config)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BAD)
    (tmp_path / "src" / "other.py").write_text("print('hello')\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_check_reports_and_exits_1(project: Path) -> None:
    result = invoke("check", "src")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("src/train.py:3:23: BNB002 [*] 4-bit config without")
    assert lines[1].startswith("src/train.py:4:9: BNB001 [*] 4-bit bitsandbytes load")
    assert lines[-1] == "Found 2 errors (2 fixable with --fix)."


def test_default_command_and_default_path(project: Path) -> None:
    assert invoke("src").exit_code == 1
    assert invoke().exit_code == 1  # checks "."
    result = invoke("--fix", "src")
    assert result.exit_code == 0
    assert "Found 2 errors (2 fixed, 0 remaining)." in result.output
    assert 'device_map="auto"' in (project / "src" / "train.py").read_text()
    assert invoke("src").output == "All checks passed!\n"


def test_fix_keeps_permissions_and_other_files(project: Path) -> None:
    target = project / "src" / "train.py"
    target.chmod(0o751)
    other_before = (project / "src" / "other.py").read_bytes()
    invoke("check", "--fix", "src")
    assert stat.S_IMODE(target.stat().st_mode) == 0o751
    assert (project / "src" / "other.py").read_bytes() == other_before
    assert not [p for p in (project / "src").iterdir() if p.name.endswith(".bnblint")]


def test_diff_changes_nothing_and_exits_1(project: Path) -> None:
    before = (project / "src" / "train.py").read_text()
    result = invoke("check", "--diff", "src")
    assert result.exit_code == 1
    assert "--- a/src/train.py" in result.output
    assert (
        '+model = AutoModelForCausalLM.from_pretrained("m", quantization_config=' in result.output
    )
    assert (project / "src" / "train.py").read_text() == before
    invoke("check", "--fix", "src")
    assert invoke("check", "--diff", "src").exit_code == 0


def test_exit_zero_select_ignore(project: Path) -> None:
    assert invoke("check", "--exit-zero", "src").exit_code == 0
    result = invoke("check", "--select", "BNB001", "src")
    assert "BNB002" not in result.output and "BNB001" in result.output
    result = invoke("check", "--ignore", "BNB00", "src")
    assert result.exit_code == 0 and result.output == "All checks passed!\n"
    result = invoke("check", "--select", "BNB", "--extend-ignore", "BNB002", "src")
    assert "BNB002" not in result.output and "BNB001" in result.output


def test_unknown_code_is_usage_error(project: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--select", "XYZ1", "src"])
    assert result.exit_code == 2
    assert "unknown rule code or prefix `XYZ1`" in result.output


def test_json_output(project: Path) -> None:
    result = invoke("check", "--output-format", "json", "src")
    data = json.loads(result.output)
    assert [d["code"] for d in data] == ["BNB002", "BNB001"]
    first = data[0]
    assert set(first) >= {
        "cell",
        "code",
        "end_location",
        "filename",
        "fix",
        "location",
        "message",
        "noqa_row",
        "url",
        "load_site",
    }
    assert first["location"] == {"row": 3, "column": 23}
    assert first["load_site"] == {"row": 4, "column": 9}
    assert first["filename"] == str(project / "src" / "train.py")
    assert first["fix"]["applicability"] == "safe"
    edits = first["fix"]["edits"]
    assert edits[0] == {
        "content": "import torch\n",
        "location": {"row": 1, "column": 1},
        "end_location": {"row": 1, "column": 1},
    }
    assert edits[1]["content"] == ", bnb_4bit_compute_dtype=torch.float16"


def test_json_edits_reproduce_the_fix(project: Path) -> None:
    """Applying the JSON edits by hand yields what --fix writes."""
    data = json.loads(invoke("check", "--output-format", "json", "src").output)
    lines = (project / "src" / "train.py").read_text().splitlines(keepends=True)
    edits = [e for d in data for e in d["fix"]["edits"]]

    def offset(loc: dict[str, int]) -> int:
        return sum(len(x) for x in lines[: loc["row"] - 1]) + loc["column"] - 1

    text = "".join(lines)
    for e in sorted(edits, key=lambda e: offset(e["location"]), reverse=True):
        text = text[: offset(e["location"])] + e["content"] + text[offset(e["end_location"]) :]
    invoke("check", "--fix", "src")
    assert text == (project / "src" / "train.py").read_text()


def test_stdin(project: Path) -> None:
    result = invoke("check", "-", input=BAD)
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("-:3:23: BNB002")
    result = invoke("check", "--stdin-filename", "x.py", "-", input=BAD)
    assert result.output.splitlines()[0].startswith("x.py:3:23: BNB002")


def test_stdin_fix_writes_source_to_stdout(project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bnblint", "--fix", "-"],
        input=BAD,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("import torch\n")
    assert 'device_map="auto")' in proc.stdout
    assert "2 fixed" in proc.stderr


def test_unparsable_and_unreadable(project: Path) -> None:
    (project / "src" / "broken.py").write_text("BitsAndBytesConfig(load_in_4bit=True\n")
    result = CliRunner().invoke(main, ["check", "src", "missing.py"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if "cannot" in line or "No such" in line]
    assert any(line.startswith("src/broken.py: cannot parse: ") for line in errors)
    assert any(line.startswith("missing.py:") for line in errors)
    assert "src/train.py:3:23: BNB002" in result.output  # the run went on


def test_bad_encoding_is_one_line(project: Path) -> None:
    (project / "src" / "bad.py").write_bytes(b"# BitsAndBytesConfig \xff\xfe\n")
    result = CliRunner().invoke(main, ["check", "src/bad.py"])
    assert result.exit_code == 1
    assert "src/bad.py: cannot decode:" in result.output


def test_prefilter_skips_files_without_words(project: Path) -> None:
    # Not parsed at all: a syntax error in a file that cannot matter is not reported.
    (project / "src" / "junk.py").write_text("def (:\n")
    result = invoke("check", "src/junk.py")
    assert result.exit_code == 0


def test_noqa(project: Path) -> None:
    text = BAD.replace(
        "quantization_config=quantization_config)",
        "quantization_config=quantization_config)  # noqa: BNB001",
    )
    (project / "src" / "train.py").write_text(text)
    result = invoke("check", "src")
    assert "BNB001" not in result.output and "BNB002" in result.output


def test_pyproject_configuration(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.bnblint]\nignore = ["BNB001"]\ncompute-dtype = "bfloat16"\n'
        'per-file-ignores = { "src/skip_*.py" = ["BNB002"] }\nextend-exclude = ["generated"]\n'
    )
    (project / "src" / "skip_me.py").write_text(BAD)
    (project / "generated").mkdir()
    (project / "generated" / "g.py").write_text(BAD)
    result = invoke("check", ".")
    assert "BNB001" not in result.output
    assert "skip_me" not in result.output and "generated" not in result.output
    invoke("check", "--fix", "src/train.py")
    assert "torch.bfloat16" in (project / "src" / "train.py").read_text()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("selectt = []", "unknown key `selectt`"),
        ('compute-dtype = "bf16"', "compute-dtype: expected one of float16, bfloat16, float32"),
        ('select = "BNB001"', "select must be a list of strings"),
        ('ignore = ["XYZ"]', "unknown rule code or prefix `XYZ`"),
    ],
)
def test_bad_configuration(project: Path, table: str, message: str) -> None:
    (project / "pyproject.toml").write_text(f"[tool.bnblint]\n{table}\n")
    result = CliRunner().invoke(main, ["check", "src"])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_invalid_toml(project: Path) -> None:
    (project / "bad.toml").write_text("[tool.bnblint\n")
    result = CliRunner().invoke(main, ["check", "--config", "bad.toml", "src"])
    assert result.exit_code == 2 and "invalid TOML" in result.output


def test_rule_command() -> None:
    result = invoke("rule", "BNB002")
    assert result.exit_code == 0
    assert "## Why is this bad?" in result.output and "0.347 s" in result.output
    assert CliRunner().invoke(main, ["rule", "BNB999"]).exit_code == 2
    listing = invoke("rule", "--all").output
    assert "BNB001" in listing and "BNB002" in listing


def test_installed_console_script(project: Path) -> None:
    exe = shutil.which("bnblint", path=os.path.dirname(sys.executable))
    assert exe is not None, "the console script is installed with the package"
    proc = subprocess.run([exe, "src"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "\x1b[" not in proc.stdout  # no colour when not on a terminal
    assert "Found 2 errors" in proc.stdout


def test_many_files_use_the_pool(project: Path) -> None:
    for i in range(20):
        (project / "src" / f"m{i}.py").write_text(BAD)
    result = invoke("check", "--jobs", "2", "src")
    assert result.output.count("BNB002") == 21
    assert invoke("check", "--fix", "-j", "2", "src").exit_code == 0
    assert invoke("check", "src").output == "All checks passed!\n"


def test_large_tree_starts_the_pool_early(project: Path) -> None:
    from bnblint.runner import LARGE_TREE

    for i in range(LARGE_TREE):
        (project / "src" / f"plain{i}.py").write_text(f"x = {i}\n")
    for i in range(3):
        (project / "src" / f"bad{i}.py").write_text(BAD)
    result = invoke("check", "--jobs", "2", "src")
    assert result.output.count("BNB002") == 4 and result.output.count("BNB001") == 4
    assert invoke("check", "--fix", "--jobs", "2", "src").exit_code == 0
    assert invoke("check", "--jobs", "2", "src").output == "All checks passed!\n"
