"""The flake8 plugin, through the real flake8 in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bnblint import __version__
from bnblint.flake8_plugin import Plugin
from bnblint.settings import find_config

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

BAD = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("m", quantization_config=quantization_config)
"""


def flake8(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    # --isolated: no setup.cfg/tox.ini/.flake8 of this repository or of the user interferes.
    return subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


def located(output: str) -> list[tuple[str, int, int, str]]:
    """(file, row, column, code) of each line flake8 printed."""
    found = []
    for line in output.splitlines():
        name, row, col, rest = line.split(":", 3)
        found.append((name, int(row), int(col), rest.split()[0]))
    return found


def codes_by_row(output: str) -> list[tuple[int, int, str]]:
    return [(row, col, code) for _, row, col, code in located(output)]


def test_entry_point_and_metadata() -> None:
    (ep,) = [e for e in entry_points(group="flake8.extension") if e.name == "BNB"]
    assert ep.value == "bnblint.flake8_plugin:Plugin"
    assert ep.load() is Plugin
    assert Plugin.name == "bnblint" and Plugin.version == __version__
    out = flake8("--version", cwd=ROOT)
    assert f"bnblint: {__version__}" in out.stdout


def test_every_fixture_reports_what_the_cli_reports() -> None:
    files = sorted(p.relative_to(ROOT).as_posix() for p in FIXTURES.rglob("*.py"))
    assert files
    out = flake8("--select", "BNB", *files, cwd=ROOT)
    assert out.stderr == ""
    got = sorted(out.stdout.splitlines())
    # The CLI takes its configuration from the first path: run it once per configuration.
    groups: dict[Path | None, list[str]] = defaultdict(list)
    for name in files:
        groups[find_config((ROOT / name).parent)].append(name)
    expected = []
    for names in groups.values():
        cli = subprocess.run(
            [sys.executable, "-m", "bnblint", "check", "--output-format", "json", "--exit-zero"]
            + names,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"},
        )
        for item in json.loads(cli.stdout):
            if item["code"] is None:
                continue  # a file the CLI cannot parse: flake8 reports E999 (not selected)
            name = Path(item["filename"]).relative_to(ROOT).as_posix()
            row, col = item["location"]["row"], item["location"]["column"]
            expected.append(f"{name}:{row}:{col}: {item['code']} {item['message']}")
    assert expected, "the fixtures must produce findings"
    assert got == sorted(expected)
    assert out.returncode == 1


def test_noqa_is_honoured_once(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from transformers import AutoModelForCausalLM as A, BitsAndBytesConfig as B\n"
        "c1 = B(load_in_4bit=True)  # noqa: BNB002\n"
        "c2 = B(load_in_4bit=True)  # noqa: E501\n"
        "c3 = B(load_in_4bit=True)  # noqa:BNB001\n"
        'a = A.from_pretrained("a", quantization_config=c1)  # noqa\n'
        'b = A.from_pretrained("b", quantization_config=c2)  # NOQA: BNB001\n'
        'c = A.from_pretrained("c", quantization_config=c3)\n'
    )
    out = flake8("--select", "BNB", "m.py", cwd=tmp_path)
    assert codes_by_row(out.stdout) == [(3, 6, "BNB002"), (4, 6, "BNB002"), (7, 5, "BNB001")]
    # Without flake8's own noqa handling, bnblint's gives the same answer: no double filtering
    # is needed for correctness, and none hides or repeats anything.
    again = flake8("--select", "BNB", "--disable-noqa", "m.py", cwd=tmp_path)
    assert codes_by_row(again.stdout) == codes_by_row(out.stdout)


def test_flake8_selection_applies(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(BAD)
    both = [(3, 23, "BNB002"), (4, 9, "BNB001")]
    assert codes_by_row(flake8("--select", "BNB", "m.py", cwd=tmp_path).stdout) == both
    # BNB is on by default once installed (flake8 6+ selects every plugin's codes).
    default = codes_by_row(flake8("m.py", cwd=tmp_path).stdout)
    assert [c for c in default if c[2].startswith("BNB")] == both
    only = flake8("--select", "BNB001", "m.py", cwd=tmp_path)
    assert codes_by_row(only.stdout) == [(4, 9, "BNB001")]
    less = flake8("--select", "BNB", "--extend-ignore", "BNB001", "m.py", cwd=tmp_path)
    assert codes_by_row(less.stdout) == [(3, 23, "BNB002")]


def test_nearest_pyproject_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bnblint]\nignore = ["BNB001"]\nper-file-ignores = { "legacy/*" = ["BNB002"] }\n'
    )
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "old.py").write_text(BAD)
    (tmp_path / "new.py").write_text(BAD)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "pyproject.toml").write_text("[tool.bnblint]\n")  # nearer: defaults
    (tmp_path / "other" / "m.py").write_text(BAD)
    out = flake8("--select", "BNB", "legacy/old.py", "new.py", "other/m.py", cwd=tmp_path)
    assert sorted((name, code) for name, _, _, code in located(out.stdout)) == [
        ("new.py", "BNB002"),
        ("other/m.py", "BNB001"),
        ("other/m.py", "BNB002"),
    ]


def test_bad_configuration_stops_flake8(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.bnblint]\nselect = ["BNB"]\ncolour = 1\n')
    (tmp_path / "m.py").write_text(BAD)
    out = flake8("--select", "BNB", "m.py", cwd=tmp_path)
    assert out.returncode != 0
    assert "unknown key `colour`" in out.stdout + out.stderr


def test_stdin(tmp_path: Path) -> None:
    out = flake8("--select", "BNB", "-", cwd=tmp_path, input=BAD)
    assert [line.split(": ")[0] for line in out.stdout.splitlines()] == [
        "stdin:3:23",
        "stdin:4:9",
    ]
    named = flake8(
        "--select", "BNB", "--stdin-display-name", "src/train.py", "-", cwd=tmp_path, input=BAD
    )
    assert named.stdout.splitlines()[0].startswith("src/train.py:3:23: BNB002 ")


# Run flake8 in one process (-j1) with a counting wrapper around the pipeline call, then report
# whether the plugin ran, its findings, and whether LibCST got imported.
PROBE = """\
import sys
import bnblint.flake8_plugin as plugin
from flake8.main.application import Application

calls = []
real = plugin.lint_one_text
plugin.lint_one_text = lambda *a, **k: calls.append(a[1]) or real(*a, **k)
app = Application()
app.run(["--isolated", "-j", "1", "--select", "BNB", sys.argv[1]])
print(len(calls), app.result_count, "libcst" in sys.modules)
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from transformers import AutoModel\nm = AutoModel.from_pretrained('x')\n", "1 0 False"),
        # A file with findings is analysed on the stdlib AST: LibCST only renders fixes,
        # which flake8 never asks for.
        (BAD, "1 2 False"),
    ],
)
def test_prefilter_keeps_libcst_out(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "m.py").write_text(text)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "m.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.splitlines()[-1] == expected, out.stderr
