"""``bnblint verify``: static arguments without torch, then real 4-bit loads on the CPU.

The loads use the real torch, transformers and bitsandbytes with tiny random stand-in models;
nothing is mocked. They are skipped where those packages cannot be imported (CI installs them).
The stand-ins are built once per session into a shared cache (BNBLINT_VERIFY_CACHE), and each
CLI run costs about three process starts, so the whole module stays well under two minutes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bnblint.rules import RULES_BY_CODE
from bnblint.settings import Settings
from bnblint.verify import MARK
from bnblint.verify.command import parse_target
from bnblint.verify.report import to_text
from bnblint.verify.sites import changes, describe, find_sites, for_cpu
from bnblint.verify.standin import in_local_cache, plan

DOCUMENTED = """\
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quantization_config = BitsAndBytesConfig(load_in_4bit=True)
model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.1-8B-Instruct",
                                             quantization_config=quantization_config)
"""
LEGACY = """\
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("m", load_in_4bit=True)
"""
UNKNOWN = """\
import argparse

from transformers import AutoModelForCausalLM, BitsAndBytesConfig

args = argparse.ArgumentParser().parse_args()
cfg = BitsAndBytesConfig(load_in_4bit=True)
a = AutoModelForCausalLM.from_pretrained("m", quantization_config=cfg, device_map=args.dm)
b = AutoModelForCausalLM.from_pretrained(
    "m", quantization_config=cfg, attn_implementation=args.attn
)
"""


def bnblint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bnblint", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


# --- static: the arguments of each variant, no torch needed ----------------------------------


def test_documented_example_arguments_as_written_and_fixed() -> None:
    (site,) = find_sites(DOCUMENTED, "example.py", Settings())
    assert (site.line, site.api, site.class_name) == (4, "from_pretrained", "AutoModelForCausalLM")
    assert site.model_id == "meta-llama/Llama-3.1-8B-Instruct"
    config = {MARK: "BitsAndBytesConfig", "options": {"load_in_4bit": True}}
    assert site.original.kwargs == {"quantization_config": config}
    fixed = site.fixed.kwargs
    assert fixed is not None and site.changed
    assert fixed["quantization_config"]["options"] == {
        "load_in_4bit": True,
        "bnb_4bit_compute_dtype": {MARK: "dtype", "name": "float16"},
    }
    assert fixed["device_map"] == "auto"
    assert describe(fixed["quantization_config"]) == (
        "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)"
    )
    assert '+ device_map="auto"' in changes(site.original.kwargs, fixed)


def test_unknown_argument_is_named_never_guessed() -> None:
    a, b = find_sites(UNKNOWN, "train.py", Settings())
    assert a.reason == "`device_map` is not statically known"
    assert b.line == 8 and b.reason == "`attn_implementation` is not statically known"


def test_conditional_config_takes_the_quantized_branch() -> None:
    source = (
        "import os\nfrom transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        "q = BitsAndBytesConfig(load_in_8bit=True) if os.environ.get('Q') else None\n"
        "m = AutoModelForCausalLM.from_pretrained('m', quantization_config=q, device_map='auto')\n"
    )
    (site,) = find_sites(source, "x.py", Settings())
    assert site.reason is None
    assert site.original.kwargs is not None
    assert site.original.kwargs["quantization_config"]["options"] == {"load_in_8bit": True}
    assert any("when quantization is enabled" in n for n in site.original.notes)


def test_pipeline_keeps_model_kwargs_apart_and_reads_constants() -> None:
    source = (
        "from transformers import BitsAndBytesConfig, pipeline\n"
        "MODEL = 'org/model'\n"
        "config = BitsAndBytesConfig(load_in_8bit=True)\n"
        "p = pipeline('text-generation', MODEL, device=0,\n"
        "             model_kwargs={'quantization_config': config})\n"
    )
    (site,) = find_sites(source, "x.py", Settings())
    assert (site.task, site.model_id) == ("text-generation", "org/model")
    assert site.original.kwargs is not None
    assert set(site.original.kwargs) == {"device", "model_kwargs"}
    kwargs, notes = for_cpu(site.original.kwargs, "pipeline")
    assert kwargs["device"] == "cpu" and "replaced by" in notes[0]


def test_cpu_keeps_auto_and_replaces_gpu_placements() -> None:
    kwargs, notes = for_cpu({"device_map": {"": 0, "lm_head": "cuda:1", "x": "disk"}}, "x")
    assert kwargs["device_map"] == {"": "cpu", "lm_head": "cpu", "x": "disk"}
    assert for_cpu({"device_map": "auto"}, "from_pretrained") == ({"device_map": "auto"}, [])
    assert for_cpu({"device_map": "cuda"}, "from_pretrained")[0] == {"device_map": "cpu"}
    assert len(notes) == 1


def test_stand_in_families() -> None:
    def family(api: str, cls: str | None, task: str | None = None) -> str | None:
        found = plan(api, cls, task)
        return found.family if found else None

    assert family("from_pretrained", "AutoModelForCausalLM") == "llama"
    assert family("from_pretrained", "T5ForConditionalGeneration") == "t5"
    assert family("from_pretrained", "AutoModelForSequenceClassification") == "bert"
    assert family("pipeline", None, "translation_en_to_fr") == "t5"
    assert family("from_pretrained", "WhisperForConditionalGeneration") is None
    mistral = plan("from_pretrained", "MistralForCausalLM", None)
    assert mistral is not None and mistral.load_class == "AutoModelForCausalLM" and mistral.note


def test_local_cache_lookup_needs_every_weight_file(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    repo = tmp_path / "models--acme--tiny"
    snapshot = repo / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    (snapshot / "config.json").write_text("{}")
    shards = {"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}
    (snapshot / "model.safetensors.index.json").write_text(json.dumps(shards))
    (snapshot / "model-1.safetensors").write_bytes(b"")
    assert not in_local_cache("acme/tiny", cache_dir=str(tmp_path))  # a shard is missing
    (snapshot / "model-2.safetensors").write_bytes(b"")
    assert in_local_cache("acme/tiny", cache_dir=str(tmp_path))
    assert not in_local_cache("acme/other", cache_dir=str(tmp_path))


def test_target_parsing(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    assert parse_target(str(path)) == (path, None)
    assert parse_target(f"{path}:12") == (path, 12)


def test_importing_the_cli_loads_no_heavy_package() -> None:
    code = (
        "import sys, bnblint.cli, bnblint.verify.command, bnblint.verify.worker\n"
        "heavy = ('torch', 'transformers', 'bitsandbytes', 'libcst')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- usage errors: exit 2, no load -----------------------------------------------------------


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(UNKNOWN)
    missing = bnblint("verify", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    no_site = bnblint("verify", f"{path}:3")
    assert no_site.returncode == 2
    assert "no bitsandbytes load starts at" in no_site.stderr and "7, 8" in no_site.stderr
    outside = bnblint("verify", f"{path}:99")
    assert outside.returncode == 2 and "outside" in outside.stderr
    bad = bnblint("verify", f"{path}:x")
    assert bad.returncode == 2 and "bad LINE" in bad.stderr


def test_missing_runtime_packages_exit_2_with_install_hint(tmp_path: Path) -> None:
    # A torch that cannot be imported, ahead of any real one on the worker's path.
    fake = tmp_path / "shadow" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch is broken here')\n")
    path = tmp_path / "example.py"
    path.write_text(DOCUMENTED)
    result = bnblint("verify", str(path), env={"PYTHONPATH": str(fake.parent)})
    assert result.returncode == 2, result.stderr
    assert "needs torch" in result.stderr
    assert "pip install 'bnblint[verify]'" in result.stderr and "torch" in result.stderr


# --- real loads on the CPU -------------------------------------------------------------------


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Skip where the runtime packages are missing; the env for CLI runs (a shared stand-in
    cache, so each stand-in is built once per session)."""
    for name in ("torch", "transformers", "bitsandbytes", "accelerate"):
        pytest.importorskip(name)
    return {"BNBLINT_VERIFY_CACHE": str(tmp_path_factory.mktemp("standins"))}


@pytest.fixture(scope="module")
def documented(
    runtime: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, dict[str, Any]]:
    path = tmp_path_factory.mktemp("documented") / "example.py"
    path.write_text(DOCUMENTED)
    result = bnblint("verify", str(path), "--device", "cpu", "--json", env=runtime)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_documented_example_fix_verified_on_cpu(documented: tuple[int, dict[str, Any]]) -> None:
    code, report = documented
    assert code == 0
    (site,) = report["sites"]
    assert site["status"] == "verified" and site["verdict"] == "fix verified"
    assert site["model"]["source"] == "stand-in"
    description = site["model"]["description"]
    assert "tiny random Llama" in description
    assert "meta-llama/Llama-3.1-8B-Instruct is not available offline" in description
    original, fixed = site["original"]["result"], site["fixed"]["result"]
    assert original["loaded"] and fixed["loaded"]
    assert original["layers"]["Linear4bit"] > 0 and fixed["layers"]["Linear4bit"] > 0
    assert original["compute_dtypes"] == ["float32"]
    assert fixed["compute_dtypes"] == ["float16"]  # what the fix writes by default
    assert original["devices"] == ["cpu"] and fixed["devices"] == ["cpu"]
    assert fixed["forward"]["seconds"] > 0


def test_json_shape(documented: tuple[int, dict[str, Any]]) -> None:
    code, report = documented
    assert set(report) == {"file", "device", "environment", "sites", "exit_code"}
    assert report["exit_code"] == code and report["device"] == "cpu"
    env = report["environment"]
    assert env["cuda"] in (True, False)
    assert {"python", "torch", "transformers", "bitsandbytes", "accelerate"} <= set(env["versions"])
    (site,) = report["sites"]
    assert {
        "line",
        "column",
        "call",
        "api",
        "status",
        "verdict",
        "reason",
        "model",
        "notes",
        "original",
        "fixed",
        "speedup",
    } <= set(site)
    assert site["original"]["arguments"] == {
        "quantization_config": "BitsAndBytesConfig(load_in_4bit=True)"
    }
    assert site["fixed"]["same_as_original"] is False
    assert site["fixed"]["changes"]
    result = site["fixed"]["result"]
    for key in ("layers", "compute_dtypes", "devices", "footprint_bytes", "forward", "records"):
        assert key in result
    assert result["footprint_bytes"] > 0
    assert result["forward"]["batch"] == [2, 64] and len(result["forward"]["runs"]) >= 3
    for record in result["records"]:
        assert set(record) == {"stage", "kind", "level", "source", "message", "count"}
    assert isinstance(site["speedup"], float)


def test_text_report_of_real_results(documented: tuple[int, dict[str, Any]]) -> None:
    out = io.StringIO()
    to_text(documented[1], out, color=False)
    text = out.getvalue()
    assert "example.py:4:9: AutoModelForCausalLM.from_pretrained(" in text
    assert "original: loads, 4-bit" in text and "compute float32" in text
    assert "fixed:    loads, 4-bit" in text and "compute float16" in text
    assert "verdict:  fix verified" in text
    assert "1 site: 1 fix verified." in text


def test_legacy_kwarg_fails_and_its_fix_loads(runtime: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "legacy.py"
    path.write_text(LEGACY)
    result = bnblint("verify", f"{path}:3", "--device", "cpu", env=runtime)
    import transformers

    major = int(transformers.__version__.split(".")[0])
    lines = result.stdout.splitlines()
    original = next(line for line in lines if line.lstrip().startswith(("original:", "load:")))
    if major >= 5:  # transformers 5 removed the keyword
        assert "TypeError" in original and "load_in_4bit" in original, result.stdout
    if "BNB004" in RULES_BY_CODE:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "+ quantization_config=BitsAndBytesConfig(load_in_4bit=True" in result.stdout
        assert "fixed:    loads, 4-bit" in result.stdout
        assert "verdict:  fix verified" in result.stdout
    else:  # no rule rewrites it yet: nothing to verify, and the call still fails
        assert "no fix to verify" in result.stdout
        assert result.returncode == (1 if major >= 5 else 0)


# Skipped sites start no worker: these run without torch too.


def test_unknown_argument_site_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(UNKNOWN)
    result = bnblint("verify", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(s["line"], s["status"]) for s in report["sites"]] == [(7, "skipped"), (8, "skipped")]
    assert report["sites"][0]["verdict"] == "skipped: `device_map` is not statically known"
    assert report["environment"] is None  # nothing to load: no worker started
    text = bnblint("verify", str(path)).stdout
    assert "skipped: `device_map` is not statically known" in text


def test_line_selects_one_site(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(UNKNOWN)
    result = bnblint("verify", f"{path}:8", "--json")
    assert result.returncode == 0, result.stderr
    (site,) = json.loads(result.stdout)["sites"]
    assert site["line"] == 8
    assert site["reason"] == "`attn_implementation` is not statically known"
