"""The target transformers: specifiers, the project's pin and the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bnblint.settings import ConfigError, Settings, parse_table
from bnblint.versions import (
    Target,
    VersionError,
    explicit_target,
    pinned_target,
    requirement_spec,
    specifier_interval,
)


def target(spec: str) -> Target:
    return Target(tuple(specifier_interval(spec)), spec)


def majors(t: Target) -> list[int]:
    return [m for m in (4, 5) if t.admits_major(m)]


@pytest.mark.parametrize(
    ("spec", "lowest", "admitted"),
    [
        (">=4.46,<5", (4, 46), [4]),
        ("==4.57.1", (4, 57, 1), [4]),
        ("^4.46", (4, 46), [4]),  # Poetry: <5
        ("~4.46", (4, 46), [4]),  # Poetry: <4.47
        (">= 4.40, < 4.50", (4, 40), [4]),  # Poetry spaces
        (">=4.40 <4.50", (4, 40), [4]),
        ("==4.*", (4,), [4]),
        ("~=4.46.0", (4, 46, 0), [4]),
        ("~=4.46", (4, 46), [4]),  # PEP 440: >=4.46, ==4.*
        (">=5", (5,), [5]),
        ("<5", (0,), [4]),
        (">=4.46", (4, 46), [4, 5]),
        (">=4.46 || >=5.1", (4, 46), [4, 5]),
        ("==5.0.0rc1", (5, 0, 0), [5]),
    ],
)
def test_specifiers(spec: str, lowest: tuple[int, ...], admitted: list[int]) -> None:
    t = target(spec)
    assert t.lowest == lowest
    assert majors(t) == admitted


def test_thresholds() -> None:
    assert target(">=4.46,<5").admits_below((4, 56))  # a fix must not write dtype=
    assert not target(">=4.56").admits_below((4, 56))
    assert not Target().admits_below((4, 56))  # no pin: the newest
    assert majors(Target()) == [5]


def test_bad_specifiers() -> None:
    with pytest.raises(VersionError):
        specifier_interval(">=four")
    with pytest.raises(VersionError, match="admits no version"):
        explicit_target(">=5,<4", "here")


@pytest.mark.parametrize(
    ("line", "spec"),
    [
        ("transformers>=4.46", ">=4.46"),
        ("transformers[torch] >= 4.46 ; python_version > '3.8'", ">= 4.46"),
        ("Transformers (>=4.3)", ">=4.3"),
        ("transformers", ""),
        ("transformers @ git+https://github.com/huggingface/transformers", ""),
        ("transformers-stream-generator==0.0.4", None),
        ("torch>=2", None),
    ],
)
def test_requirement_spec(line: str, spec: str | None) -> None:
    assert requirement_spec(line) == spec


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_requirements_pin_is_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "torch>=2.4\n# transformers>=5\ntransformers==4.46.3  # pinned\n",
            "src/train.py": "",
        },
    )
    t = pinned_target((tmp_path / "src").resolve())
    assert t.lowest == (4, 46, 3) and majors(t) == [4]
    assert "requirements.txt:3 `transformers==4.46.3`" in t.source


def test_pyproject_and_extras(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = ["torch"]\n'
            '[project.optional-dependencies]\nllm = ["transformers>=4.57,<6"]\n',
        },
    )
    t = pinned_target(tmp_path.resolve())
    assert t.lowest == (4, 57) and majors(t) == [4, 5]
    assert "optional-dependencies" in t.source


def test_poetry(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.10"\n'
            'transformers = {version = "^4.40", extras = ["torch"]}\n'
        },
    )
    t = pinned_target(tmp_path.resolve())
    assert t.lowest == (4, 40) and majors(t) == [4]


def test_setup_cfg_and_setup_py(tmp_path: Path) -> None:
    write(
        tmp_path / "a",
        {"setup.cfg": "[options]\ninstall_requires =\n    numpy\n    transformers>=4.30\n"},
    )
    write(
        tmp_path / "b",
        {"setup.py": "from setuptools import setup\nsetup(install_requires=['transformers~=5.1'])"},
    )
    assert pinned_target((tmp_path / "a").resolve()).lowest == (4, 30)
    b = pinned_target((tmp_path / "b").resolve())
    assert b.lowest == (5, 1) and majors(b) == [5]


def test_both_files_count(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"requirements.txt": "transformers>=5\n", "requirements-legacy.txt": "transformers<5\n"},
    )
    assert majors(pinned_target(tmp_path.resolve())) == [4, 5]


def test_nearest_wins_and_repository_root_stops(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "transformers==4.46.0\n",
            "repo/.git/HEAD": "",
            "repo/pkg/sub/requirements.txt": "transformers>=5.2\n",
            "repo/other/x.py": "",
        },
    )
    assert pinned_target((tmp_path / "repo/pkg/sub").resolve()).lowest == (5, 2)
    # repo/ is a repository root: the pin above it belongs to something else.
    assert not pinned_target((tmp_path / "repo/other").resolve()).pinned


def test_setting_wins_over_pin(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "transformers>=5\n", "a.py": ""})
    settings = parse_table({"target-transformers": "4.57"}, tmp_path / "pyproject.toml")
    t = settings.target_for(str(tmp_path / "a.py"))
    assert t.lowest == (4, 57) and majors(t) == [4]
    assert "target-transformers = '4.57'" in t.source
    pinned = Settings().target_for(str((tmp_path / "a.py").resolve()))
    assert pinned.lowest == (5,)


@pytest.mark.parametrize("value", [4.57, "four", ">=5,<4", ["4.57"]])
def test_bad_setting_is_a_config_error(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="target-transformers"):
        parse_table({"target-transformers": value}, tmp_path / "pyproject.toml")


LEGACY = (
    "from transformers import AutoModelForCausalLM\n"
    'm = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True, device_map="auto")\n'
)
CAST = (
    "import torch\n"
    "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
    "def load():\n"
    '    model = AutoModelForCausalLM.from_pretrained("m", device_map="auto",\n'
    "        quantization_config=BitsAndBytesConfig(load_in_8bit=True))\n"
    "    model = model.half()\n"
    "    return model\n"
)


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnblint", "check", "--no-color", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "the load fails on transformers 5 (TypeError"),
        ({"requirements.txt": "transformers==4.46.3\n"}, "deprecated on transformers 4"),
        ({"requirements.txt": "transformers>=4.46\n"}, "; deprecated on 4.x"),
        (
            {
                "requirements.txt": "transformers==4.46.3\n",
                "pyproject.toml": '[tool.bnblint]\ntarget-transformers = "5.2"\n',
            },
            "the load fails on transformers 5 (TypeError",
        ),
    ],
)
def test_bnb004_message_follows_the_target(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    (tmp_path / ".git").mkdir()  # the pin walk stops here
    write(tmp_path, {**files, "train.py": LEGACY})
    run = run_cli(tmp_path, "train.py")
    assert "BNB004" in run.stdout and expected in run.stdout, run.stdout + run.stderr
    if expected.startswith("the load fails") and "; deprecated" not in expected:
        assert "deprecated" not in run.stdout


@pytest.mark.parametrize(
    ("pin", "keyword"),
    [("transformers==4.46.3\n", "torch_dtype"), ("transformers>=4.56\n", "dtype")],
)
def test_bnb006_fix_writes_the_dtype_keyword_the_target_has(
    tmp_path: Path, pin: str, keyword: str
) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path, {"requirements.txt": pin, "train.py": CAST})
    run = run_cli(tmp_path, "--fix", "--unsafe-fixes", "train.py")
    fixed = (tmp_path / "train.py").read_text()
    assert f"{keyword}=torch.float16" in fixed, run.stdout + run.stderr
    assert "model.half()" not in fixed
    if keyword == "dtype":
        assert "torch_dtype" not in fixed
