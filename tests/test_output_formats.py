"""Output formats, ``--statistics``, ``--show-fixes`` and ``--add-noqa``, through the real CLI.

Every format is rendered for the whole fixture suite and checked for its shape (SARIF against
the official schema); the fixture set grows, so nothing here counts rules or fixtures.
"""

from __future__ import annotations

import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bnblint.cli import main
from bnblint.diagnostics import Finding, Level, Location
from bnblint.noqa import add_noqa, add_noqa_directives
from bnblint.output import FORMAT_NAMES
from bnblint.output.github import escape_data, escape_property
from bnblint.rules import ALL_RULES, RULES_BY_CODE

ROOT = Path(__file__).resolve().parent.parent
# The OASIS SARIF 2.1.0 schema, shipped with the tests so that a clone validates against it.
SARIF_SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"

BAD = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("m", quantization_config=quantization_config)
"""
JSON_KEYS = {
    "cell",
    "code",
    "end_location",
    "filename",
    "fix",
    "level",
    "load_site",
    "location",
    "message",
    "noqa_row",
    "url",
}
PROP = r"(?:[^,:%\r\n]|%25|%2C|%3A|%0D|%0A)+"
GITHUB_FINDING = re.compile(
    r"::(?P<level>error|warning) title=bnblint \((?P<code>BNB\d{3})\),"
    rf"file=(?P<file>{PROP}),line=(?P<line>\d+),col=\d+,endLine=\d+,endColumn=\d+"
    r"::(?P=code) (?:[^%\r\n]|%25|%0D|%0A)+"
)
# A notebook finding: the file only, the cell and position in the message.
GITHUB_CELL_FINDING = re.compile(
    r"::(?P<level>error|warning) title=bnblint \((?P<code>BNB\d{3})\),file=(?P<file>[^,:]+)"
    r"::(?P=code) cell (?P<cell>\d+), line (?P<line>\d+), column \d+: (?:[^%\r\n]|%25|%0D|%0A)+"
)
GITHUB_ERROR = re.compile(rf"::error file={PROP}::cannot (?:read|decode|parse|write): [^\r\n]+")


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    # GITHUB_ACTIONS is unset unless a test sets it, so that results do not depend on where
    # the suite runs.
    env = {"GITHUB_ACTIONS": None, "CI_PROJECT_DIR": None, **(env or {})}
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)


@cache
def fixture_output(fmt: str) -> tuple[int, str]:
    """``bnblint check --output-format FMT fixtures/`` run from the repository root."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = run("check", "--output-format", fmt, "fixtures")
    finally:
        os.chdir(cwd)
    return result.exit_code, result.stdout


def fixture_findings() -> list[dict[str, Any]]:
    code, out = fixture_output("json")
    data: list[dict[str, Any]] = json.loads(out)
    assert data, "the fixture suite has findings"
    return [d for d in data if d["code"] is not None]


def fixture_errors() -> int:
    """Fixture files that cannot be parsed (none today; tolerated if one is added)."""
    return sum(1 for d in json.loads(fixture_output("json")[1]) if d["code"] is None)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BAD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- every format over the whole fixture suite ------------------------------------------------


def test_format_names() -> None:
    assert FORMAT_NAMES[0] == "text"
    assert set(FORMAT_NAMES) >= {
        "text",
        "concise",
        "full",
        "grouped",
        "json",
        "json-lines",
        "github",
        "sarif",
        "junit",
        "gitlab",
    }


def test_sarif_fixture_suite_is_schema_valid() -> None:
    from jsonschema.validators import validator_for

    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    code, out = fixture_output("sarif")
    log = json.loads(out)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])

    assert log["version"] == "2.1.0" and "$schema" in log
    (run_,) = log["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "bnblint" and driver["version"] and driver["informationUri"]
    assert [r["id"] for r in driver["rules"]] == [r.code for r in ALL_RULES]
    for descriptor, rule in zip(driver["rules"], ALL_RULES):
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["fullDescription"]["text"] == rule.section("What it does")
        assert (
            descriptor["help"]["text"] and "## Why is this bad?" in descriptor["help"]["markdown"]
        )
        assert descriptor["helpUri"] == rule.url()
        assert descriptor["defaultConfiguration"]["level"] == rule.level.value
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")

    results = run_["results"]
    expected = fixture_findings()
    assert [r["ruleId"] for r in results] == [d["code"] for d in expected]
    with_fix = 0
    for result, finding in zip(results, expected):
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == finding["level"]
        (location,) = result["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%"
        assert artifact["uri"].startswith("fixtures/") and "\\" not in artifact["uri"]
        if finding["cell"] is not None:
            # A cell's rows are not the notebook file's: no region, the message names them.
            assert "region" not in location["physicalLocation"] and "fixes" not in result
            assert result["message"]["text"].startswith(f"cell {finding['cell']}, line ")
            continue
        region = location["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == (
            finding["location"]["row"],
            finding["location"]["column"],
        )
        if finding["fix"] and finding["fix"]["edits"]:
            with_fix += 1
            (change,) = result["fixes"][0]["artifactChanges"]
            assert change["artifactLocation"]["uri"] == artifact["uri"]
            assert [r["insertedContent"]["text"] for r in change["replacements"]] == [
                e["content"] for e in finding["fix"]["edits"]
            ]
        else:
            assert "fixes" not in result
    assert with_fix, "the fixture suite has fixable findings"


def test_junit_fixture_suite() -> None:
    code, out = fixture_output("junit")
    assert code == 1
    root = ET.fromstring(out)
    assert root.tag == "testsuites" and root.get("name") == "bnblint"
    expected = fixture_findings()
    cases = 0
    names = set()
    for suite in root:
        assert suite.tag == "testsuite"
        name = suite.get("name")
        assert name and name not in names
        names.add(name)
        assert int(suite.get("tests", "-1")) == len(suite)
        for case in suite:
            assert case.tag == "testcase" and case.get("classname") == name
            (failure,) = case
            assert failure.get("message")
            if failure.tag == "error":
                continue
            assert failure.tag == "failure" and failure.get("type") in RULES_BY_CODE
            cases += 1
    assert cases == len(expected) == int(root.get("failures", "-1"))
    assert int(root.get("errors", "-1")) == fixture_errors()


def test_github_fixture_suite() -> None:
    code, out = fixture_output("github")
    lines = out.splitlines()
    expected = fixture_findings()
    assert len(lines) == len(expected) + fixture_errors()
    assert all(GITHUB_ERROR.fullmatch(line) for line in lines[len(expected) :])
    for line, finding in zip(lines, expected):
        pattern = GITHUB_FINDING if finding["cell"] is None else GITHUB_CELL_FINDING
        match = pattern.fullmatch(line)
        assert match, line
        assert match["level"] == finding["level"] and match["code"] == finding["code"]
        assert match["file"].startswith("fixtures/")  # relative to the working directory
        assert int(match["line"]) == finding["location"]["row"]


def test_gitlab_fixture_suite() -> None:
    code, out = fixture_output("gitlab")
    issues = json.loads(out)
    assert isinstance(issues, list) and len(issues) == len(fixture_findings()) + fixture_errors()
    fingerprints = [i["fingerprint"] for i in issues]
    assert len(set(fingerprints)) == len(fingerprints)
    issues = [i for i in issues if i["check_name"] != "bnblint-error"]
    for issue in issues:
        assert isinstance(issue["description"], str) and issue["description"]
        assert issue["check_name"] in RULES_BY_CODE
        assert re.fullmatch(r"[0-9a-f]{64}", issue["fingerprint"])
        assert issue["severity"] in ("major", "minor")
        assert issue["severity"] == (
            "major" if RULES_BY_CODE[issue["check_name"]].level is Level.ERROR else "minor"
        )
        location = issue["location"]
        assert location["path"].startswith("fixtures/")
        lines = location["lines"]
        assert isinstance(lines["begin"], int) and 1 <= lines["begin"] <= lines["end"]


def test_json_lines_fixture_suite() -> None:
    code, out = fixture_output("json-lines")
    objects = [json.loads(line) for line in out.splitlines()]
    assert objects == json.loads(fixture_output("json")[1])
    for obj in objects:
        assert set(obj) == JSON_KEYS


def test_full_fixture_suite() -> None:
    code, out = fixture_output("full")
    expected = fixture_findings()  # notebook findings are framed in their cell
    carets = [
        line for line in out.splitlines() if re.fullmatch(r" +\| [ \t]*\^+( BNB\d{3})?", line)
    ]
    labelled = [line for line in carets if line.endswith(tuple(RULES_BY_CODE))]
    assert len(labelled) == len(expected)
    # A notebook fix may edit other cells too: no single-cell diff is shown for it.
    fixable = [d for d in expected if d["fix"] and d["fix"]["edits"] and d["cell"] is None]
    assert out.count("\n--- a/") == len(fixable) and out.count("\n+++ b/") == len(fixable)
    assert any(line.startswith("Found ") for line in out.splitlines()[-3:])


def test_grouped_fixture_suite() -> None:
    code, out = fixture_output("grouped")
    lines = out.splitlines()
    files = {str(Path(d["filename"]).relative_to(ROOT)) for d in fixture_findings()}
    for name in files:
        assert lines.count(f"{name}:") == 1
    body = [line for line in lines if line.startswith("  ")]
    assert len(body) == len(fixture_findings())
    assert all(re.match(r"  (cell \d+:)?\d+:\d+ +BNB\d{3} ", line) for line in body)


def test_concise_and_text_fixture_suite() -> None:
    concise = fixture_output("concise")[1].splitlines()
    text = fixture_output("text")[1].splitlines()
    assert len(concise) == len(fixture_findings())
    assert text[: len(concise)] == concise
    assert any(line.startswith("Found ") for line in text[len(concise) :])


# --- errors in every format -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_errors_appear_in_every_format(project: Path, fmt: str) -> None:
    (project / "src" / "broken.py").write_text("BitsAndBytesConfig(load_in_4bit=True\n")
    result = run("check", "--output-format", fmt, "src")
    assert result.exit_code == 1
    assert "src/broken.py: cannot parse: " in result.stderr  # always, whatever the format
    out = result.stdout
    assert "BNB002" in out
    if fmt in ("json", "gitlab"):
        data = json.loads(out)
        assert any("cannot parse" in (d.get("message") or d.get("description")) for d in data)
    elif fmt == "json-lines":
        assert any(
            json.loads(line)["message"].startswith("cannot parse") for line in out.split("\n")[:-1]
        )
    elif fmt == "github":
        assert any(GITHUB_ERROR.fullmatch(line) for line in out.splitlines())
        assert "::error file=src/broken.py::cannot parse: " in out
    elif fmt == "sarif":
        (notification,) = json.loads(out)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        assert (
            notification["level"] == "error" and "cannot parse" in notification["message"]["text"]
        )
    elif fmt == "junit":
        errors = ET.fromstring(out).findall("./testsuite/testcase/error")
        assert len(errors) == 1 and "cannot parse" in (errors[0].get("message") or "")


# --- single formats ---------------------------------------------------------------------------


def test_github_escaping() -> None:
    assert escape_data("50% a\r\nb:c,d") == "50%25 a%0D%0Ab:c,d"
    assert escape_property("a%b\nc:d,e") == "a%25b%0Ac%3Ad%2Ce"


def test_github_paths(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "x, y.py"
    outside.write_text(BAD)
    out = run("check", "--output-format", "github", "src", str(outside)).stdout
    files = [GITHUB_FINDING.fullmatch(line)["file"] for line in out.splitlines()]  # type: ignore[index]
    assert "src/train.py" in files
    # Not under the working directory: the path as given, escaped.
    assert escape_property(str(outside)) in files


def test_github_actions_adds_annotations_to_text(project: Path) -> None:
    actions = {"GITHUB_ACTIONS": "true"}
    result = run("check", "src", env=actions)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("src/train.py:3:23: BNB002 [*] ")
    assert "Found 2 errors (2 fixable with --fix)." in lines
    annotations = [line for line in lines if line.startswith("::")]
    assert len(annotations) == 2 and all(GITHUB_FINDING.fullmatch(a) for a in annotations)
    # A format chosen explicitly is left alone, and nothing changes outside Actions.
    assert "::" not in run("check", "--output-format", "text", "src", env=actions).stdout
    assert json.loads(run("check", "--output-format", "json", "src", env=actions).stdout)
    assert "::warning" not in run("check", "src").stdout


def test_full_shows_frame_caret_and_diff(project: Path) -> None:
    out = run("check", "--output-format", "full", "src").stdout
    lines = out.splitlines()
    i = lines.index("3 | quantization_config = BitsAndBytesConfig(load_in_4bit=True)")
    caret = lines[i + 1]
    assert (
        caret == "  |" + " " * 23 + "^" * len("BitsAndBytesConfig(load_in_4bit=True)") + " BNB002"
    )
    assert "  = help: Add `bnb_4bit_compute_dtype=torch.float16` (safe fix)" in lines
    assert "+import torch" in lines and "--- a/src/train.py" in lines


def test_full_multiline_span(project: Path) -> None:
    (project / "src" / "train.py").write_text(
        "from transformers import AutoModel, BitsAndBytesConfig\n"
        "m = AutoModel.from_pretrained(\n"
        '    "m",\n'
        "    quantization_config=BitsAndBytesConfig(load_in_4bit=True,\n"
        "                                           bnb_4bit_compute_dtype=torch.float16),\n"
        ")\n"
    )
    out = run("check", "--output-format", "full", "--select", "BNB001", "src").stdout
    lines = out.splitlines()
    start = lines.index("2 | m = AutoModel.from_pretrained(")
    assert lines[start + 1] == "  |     " + "^" * len("AutoModel.from_pretrained(")
    assert lines[start + 2] == '3 |     "m",' and lines[start + 3] == "  |     ^^^^"
    assert "6 | )" in lines and "  | ^ BNB001" in lines


def test_gitlab_fingerprints_survive_edits_above(project: Path) -> None:
    target = project / "src" / "train.py"
    before = json.loads(run("check", "--output-format", "gitlab", "src").stdout)
    target.write_text("\n\n" + BAD)
    after = json.loads(run("check", "--output-format", "gitlab", "src").stdout)
    assert [i["fingerprint"] for i in before] == [i["fingerprint"] for i in after]
    assert [i["location"]["lines"]["begin"] + 2 for i in before] == [
        i["location"]["lines"]["begin"] for i in after
    ]
    assert len({i["fingerprint"] for i in before}) == 2
    assert {i["location"]["path"] for i in before} == {"src/train.py"}


def test_gitlab_identical_findings_get_distinct_fingerprints(project: Path) -> None:
    body = (
        "    cfg = BitsAndBytesConfig(load_in_4bit=True)\n"
        '    return AutoModel.from_pretrained("m", quantization_config=cfg, device_map="auto")\n'
    )
    (project / "src" / "train.py").write_text(
        "from transformers import AutoModel, BitsAndBytesConfig\n\n"
        f"def a():\n{body}\n\ndef b():\n{body}"
    )
    issues = json.loads(run("check", "--output-format", "gitlab", "src").stdout)
    assert len(issues) == 2 and issues[0]["fingerprint"] != issues[1]["fingerprint"]


def test_junit_without_findings_is_a_passing_report(project: Path) -> None:
    (project / "src" / "train.py").write_text("print('fine')\n")
    result = run("check", "--output-format", "junit", "src")
    assert result.exit_code == 0
    root = ET.fromstring(result.stdout)
    assert root.get("failures") == "0" and root.findall("./testsuite/testcase/failure") == []


def test_stdin_with_full_and_gitlab(project: Path) -> None:
    result = CliRunner(env={"GITHUB_ACTIONS": None}).invoke(
        main, ["check", "--output-format", "full", "--stdin-filename", "x.py", "-"], input=BAD
    )
    assert "3 | quantization_config = BitsAndBytesConfig(load_in_4bit=True)" in result.stdout
    result = CliRunner().invoke(main, ["check", "--output-format", "gitlab", "-"], input=BAD)
    assert len(json.loads(result.stdout)) == 2


# --- statistics and show-fixes ----------------------------------------------------------------


def test_statistics_text_and_json(project: Path) -> None:
    (project / "src" / "more.py").write_text(
        BAD.replace('("m", quantization_config=', '("m", device_map="auto", quantization_config=')
    )
    result = run("check", "--statistics", "src")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "2\tBNB002\t[*] missing-compute-dtype",
        "1\tBNB001\t[*] missing-device-map",
        "[*] fixable with `bnblint check --fix`",
    ]
    data = json.loads(run("check", "--statistics", "--output-format", "json", "src").stdout)
    assert data == [
        {"code": "BNB002", "name": "missing-compute-dtype", "count": 2, "fixable": True},
        {"code": "BNB001", "name": "missing-device-map", "count": 1, "fixable": True},
    ]
    # After --fix only what remains is counted.
    assert run("check", "--fix", "--statistics", "src").stdout == ""


def test_statistics_unsafe_fix_is_fixable_only_with_unsafe_fixes(project: Path) -> None:
    (project / "src" / "train.py").write_text(
        BAD.replace('("m", quantization_config=', '("m", dtype="auto", quantization_config=')
    )
    args = ("check", "--statistics", "--select", "BNB002", "--output-format", "json", "src")
    assert json.loads(run(*args).stdout)[0]["fixable"] is False
    assert json.loads(run(*args, "--unsafe-fixes").stdout)[0]["fixable"] is True


def test_show_fixes_with_fix(project: Path) -> None:
    result = run("check", "--fix", "--show-fixes", "src")
    assert result.exit_code == 0
    out = result.stdout
    assert "Fixed 2 errors:\n- src/train.py:\n    1 × BNB001\n    1 × BNB002\n" in out
    assert out.rstrip().endswith("Found 2 errors (2 fixed, 0 remaining).")


# --- --add-noqa -------------------------------------------------------------------------------


def test_add_noqa_cli(project: Path) -> None:
    target = project / "src" / "train.py"
    latin = project / "src" / "latin.py"
    latin.write_bytes(
        b"# -*- coding: latin-1 -*-\r\n# caf\xe9\r\n"
        + BAD.replace("\n", "\r\n")
        .replace("=quantization_config)", "=quantization_config)  # noqa: E501")
        .encode()
    )
    target.chmod(0o751)
    result = run("check", "--add-noqa", "src")
    assert result.exit_code == 0
    assert result.stderr == "Added 4 noqa directives.\n"
    assert target.read_text() == BAD.replace(
        "(load_in_4bit=True)\n", "(load_in_4bit=True)  # noqa: BNB002\n"
    ).replace("=quantization_config)\n", "=quantization_config)  # noqa: BNB001\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o751
    data = latin.read_bytes()
    assert data.startswith(b"# -*- coding: latin-1 -*-\r\n# caf\xe9\r\n")
    assert b"(load_in_4bit=True)  # noqa: BNB002\r\n" in data
    assert b"=quantization_config)  # noqa: E501, BNB001\r\n" in data
    assert data.count(b"\r\n") == data.count(b"\n")
    assert run("check", "src").stdout == "All checks passed!\n"
    again = run("check", "--add-noqa", "src")
    assert again.stderr == "Added 0 noqa directives.\n" and target.read_text().count("noqa") == 2


def test_add_noqa_refuses_fix_and_stdin(project: Path) -> None:
    for args in (["--fix"], ["--diff"], ["-"]):
        result = CliRunner().invoke(main, ["check", "--add-noqa", *args], input=BAD)
        assert result.exit_code == 2 and "--add-noqa cannot be used" in result.output


def finding(code: str, row: int) -> Finding:
    return Finding(
        code=code,
        message="m",
        filename="x.py",
        location=Location(row, 1),
        end_location=Location(row, 2),
        level=Level.WARNING,
        url="",
        noqa_row=row,
    )


def test_add_noqa_merges_and_keeps_everything_else() -> None:
    text = "a = f(1)  # noqa:E501 because\nb = g(2)  # a comment\nc = h(3)   \n"
    findings = [finding("BNB002", 1), finding("BNB001", 2), finding("BNB009", 3)]
    findings.append(finding("BNB001", 3))
    assert add_noqa(text, findings) == (
        "a = f(1)  # noqa:E501, BNB002 because\n"
        "b = g(2)  # a comment  # noqa: BNB001\n"
        "c = h(3)   # noqa: BNB001, BNB009\n"
    )
    # Already suppressed (by code or a bare noqa): nothing to add.
    assert add_noqa_directives(
        "x = 1  # noqa: BNB001\ny = 2  # noqa\n", [finding("BNB001", 1), finding("BNB002", 2)]
    ) == (
        "x = 1  # noqa: BNB001\ny = 2  # noqa\n",
        0,
    )


@pytest.mark.parametrize(
    "text",
    [
        'x = f("""a\nb""")\n',  # a line ending inside a triple-quoted string
        'x = f(f"""{y}\nb""")\n',  # an f-string (tokenized in pieces on 3.12+)
        'x = f(f"""{\ny}""")\n',  # inside an f-string's replacement field
        "x = f(1) + \\\n    2\n",  # a backslash continuation
    ],
)
def test_add_noqa_leaves_unsafe_lines_alone(text: str) -> None:
    assert add_noqa_directives(text, [finding("BNB001", 1)]) == (text, 0)


def test_add_noqa_on_a_real_multiline_string_call(project: Path) -> None:
    text = (
        "from transformers import AutoModel, BitsAndBytesConfig\n"
        'cfg = BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["""lm\n'
        'head"""])\n'
        'm = AutoModel.from_pretrained("m", quantization_config=cfg, device_map="auto")\n'
    )
    (project / "src" / "train.py").write_text(text)
    assert "BNB002" in run("check", "src").stdout
    result = run("check", "--add-noqa", "src")
    assert result.stderr == "Added 0 noqa directives.\n"
    assert (project / "src" / "train.py").read_text() == text


def test_add_noqa_ast_safety_net(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the token checks missed a string, the AST comparison still keeps it intact."""
    import bnblint.noqa as noqa

    monkeypatch.setattr(noqa, "_string_rows", lambda source: (set(), {}))
    text = 'x = f("""a\nb""")\ny = g(2)\n'
    new, n = noqa.add_noqa_directives(text, [finding("BNB001", 1), finding("BNB002", 3)])
    assert (new, n) == ('x = f("""a\nb""")\ny = g(2)  # noqa: BNB002\n', 1)
