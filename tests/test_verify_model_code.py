"""Code shipped with a model: ``bnblint verify`` never runs it unless told
--trust-remote-code, and once trusted it can neither hang verify nor outlive it.

Each test builds a real malicious model directory: a tiny Llama that loads fine on its own,
plus ``auto_map`` entries (config, model, tokenizer) and a ``custom_generate`` pointing at
Python files that run a payload when imported (append to a marker file; fork a sleeper).
Everything goes through the real CLI in a subprocess; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CONFIG_4BIT = "BitsAndBytesConfig(load_in_4bit=True)"


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny Llama checkpoint with its tokenizer (bnblint's own stand-in builder)."""
    for name in ("torch", "transformers", "bitsandbytes", "accelerate"):
        pytest.importorskip(name)
    directory = tmp_path_factory.mktemp("tiny") / "llama"
    code = (
        "import sys; from pathlib import Path; from bnblint.verify.standin import build; "
        "build('llama', 'AutoModelForCausalLM', Path(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", code, str(directory)], check=True, timeout=300)
    return directory


def evil_copy(tiny: Path, where: Path, payload: str, model_type: str = "llama") -> Path:
    """``tiny`` plus custom code, in every place transformers looks for it, that runs
    ``payload`` on import."""
    directory = where / "evil-model"
    shutil.copytree(tiny, directory)
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {
        "AutoConfig": "configuration_evil.EvilConfig",
        "AutoModelForCausalLM": "modeling_evil.EvilModel",
    }
    (directory / "config.json").write_text(json.dumps(config))
    tokenizer = json.loads((directory / "tokenizer_config.json").read_text())
    tokenizer["auto_map"] = {"AutoTokenizer": [None, "tokenization_evil.EvilTokenizer"]}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    modules = {
        "configuration_evil.py": "from transformers import LlamaConfig as EvilConfig\n",
        "modeling_evil.py": "from transformers import LlamaForCausalLM as EvilModel\n",
        "tokenization_evil.py": (
            "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n"
        ),
        "custom_generate/generate.py": "def generate(model, *args, **kwargs):\n    pass\n",
    }
    for name, body in modules.items():
        (directory / name).parent.mkdir(exist_ok=True)
        (directory / name).write_text(payload + body)
    return directory


def marker_payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"


def verify(
    cwd: Path, *args: str, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {
        **os.environ,
        # Where a trusted run copies the directory's modules: not the user's cache.
        "HF_MODULES_CACHE": str(cwd / "hf-modules"),
        "BNBLINT_VERIFY_CACHE": str(cwd / "standins"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bnblint", "verify", *args, "--device", "cpu", "--json"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    assert result.stdout, result.stderr
    return result, json.loads(result.stdout)


def test_trust_remote_code_in_the_call_skips_the_site(tiny_llama: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = evil_copy(tiny_llama, tmp_path, marker_payload(marker))
    (tmp_path / "train.py").write_text(
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig, pipeline\n"
        f"q = {CONFIG_4BIT}\n"
        f"a = AutoModelForCausalLM.from_pretrained({str(evil)!r}, trust_remote_code=True,\n"
        "                                         quantization_config=q)\n"
        f"b = pipeline('text-generation', model={str(evil)!r},\n"
        "             model_kwargs={'quantization_config': q, 'trust_remote_code': True})\n"
        # Another way to run the directory's code: unpickling its weights.
        f"c = AutoModelForCausalLM.from_pretrained({str(evil)!r}, weights_only=False,\n"
        "                                         quantization_config=q)\n"
        # The call's model is not local, but --model below is the malicious directory.
        "d = AutoModelForCausalLM.from_pretrained('org/remote', quantization_config=q,\n"
        "                                         trust_remote_code=True)\n"
    )
    for args in (["train.py"], ["train.py", "--model", str(evil)]):
        result, report = verify(tmp_path, *args)
        assert result.returncode == 0, result.stderr
        reasons = [s["reason"] for s in report["sites"]]
        assert reasons == [
            "the call passes `trust_remote_code=True`, which would run the model directory's "
            "own code; rerun with --trust-remote-code to allow it",
            "the call passes `model_kwargs['trust_remote_code']=True`, which would run the "
            "model directory's own code; rerun with --trust-remote-code to allow it",
            "the call passes `weights_only=False`, which would unpickle the model's weight "
            "files, which can run code hidden in them; rerun with --trust-remote-code to "
            "allow it",
            reasons[0],
        ]
        assert all(s["status"] == "skipped" for s in report["sites"])
        assert report["environment"] is None  # no worker was even started
        assert not marker.exists()


def test_without_trust_remote_code_the_directory_code_never_runs(
    tiny_llama: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    evil = evil_copy(tiny_llama, tmp_path, marker_payload(marker))
    (tmp_path / "train.py").write_text(
        "from transformers import (AutoModelForCausalLM, BitsAndBytesConfig,\n"
        "                          LlamaForCausalLM, pipeline)\n"
        f"q = {CONFIG_4BIT}\n"
        "a = AutoModelForCausalLM.from_pretrained('./evil-model', quantization_config=q)\n"
        "b = pipeline('text-generation', model='./evil-model',\n"
        "             model_kwargs={'quantization_config': q})\n"
        "c = LlamaForCausalLM.from_pretrained('./evil-model', quantization_config=q,\n"
        "                                     trust_remote_code=False)\n"
    )
    result, report = verify(tmp_path, "train.py")
    assert not marker.exists(), marker.read_text()
    assert result.returncode == 0, result.stdout
    for site in report["sites"]:
        # The loads really ran, on the directory's weights, with transformers' own classes.
        assert site["model"]["source"] == "local", site
        assert site["original"]["result"]["loaded"], site
        assert site["original"]["result"]["class"] == "LlamaForCausalLM"
        assert site["fixed"]["result"]["loaded"], site

    # The same directory given as --model for a call of a model that is not local.
    (tmp_path / "other.py").write_text(
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        "m = AutoModelForCausalLM.from_pretrained('org/remote',\n"
        f"                                         quantization_config={CONFIG_4BIT})\n"
    )
    result, report = verify(tmp_path, "other.py", "--model", str(evil))
    assert not marker.exists(), marker.read_text()
    (site,) = report["sites"]
    assert site["model"]["source"] == "option" and site["original"]["result"]["loaded"]


def test_a_directory_only_its_own_code_can_load_is_refused(
    tiny_llama: Path, tmp_path: Path
) -> None:
    # No model type transformers knows: only the auto_map code could load it, and with no
    # trust_remote_code transformers would ask on stdin; verify refuses at once instead.
    marker = tmp_path / "MARKER"
    evil_copy(tiny_llama, tmp_path, marker_payload(marker), model_type="evil-llama")
    (tmp_path / "train.py").write_text(
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        "m = AutoModelForCausalLM.from_pretrained('evil-model',\n"
        f"                                         quantization_config={CONFIG_4BIT})\n"
    )
    result, report = verify(tmp_path, "train.py", timeout=300)
    assert not marker.exists(), marker.read_text()
    (site,) = report["sites"]
    error = site["original"]["result"]["error"]
    assert error["stage"] == "load" and "contains custom code" in error["message"], error
    assert result.returncode == 1  # the fixed call cannot load either


def test_the_flag_passes_it_through(tiny_llama: Path, tmp_path: Path) -> None:
    # Proof that the directory above is malicious for real: trusted, its code runs.
    marker = tmp_path / "MARKER"
    evil = evil_copy(tiny_llama, tmp_path, marker_payload(marker))
    (tmp_path / "train.py").write_text(
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(evil)!r}, trust_remote_code=True,\n"
        f"                                         quantization_config={CONFIG_4BIT})\n"
    )
    result, report = verify(tmp_path, "train.py", "--trust-remote-code")
    (site,) = report["sites"]
    assert site["reason"] is None and site["status"] != "skipped", site
    assert any("passed through (--trust-remote-code)" in n for n in site["notes"])
    assert "configuration_evil" in marker.read_text()


# --- trusted code that forks: verify must return, and leave nothing running -----------------


def fork_payload(pids: Path, then_sleep: bool) -> str:
    """Start a sleeper that inherits the worker's stdout and stderr, record its pid (and this
    process's), and optionally hang right here."""
    lines = [
        "import os, subprocess, time",
        "p = subprocess.Popen(['sleep', '300'])",
        f"open({str(pids)!r}, 'a').write(f'{{p.pid}}\\n{{os.getpid()}}\\n')",
    ]
    if then_sleep:
        lines.append("time.sleep(300)")
    return "\n".join(lines) + "\n"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not reaped yet (PID 1 of a container may never reap it)
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def recorded(pids: Path) -> list[int]:
    return [int(n) for n in pids.read_text().split()] if pids.exists() else []


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
@pytest.mark.parametrize("then_sleep", [False, True], ids=["exits", "hangs"])
def test_forked_processes_neither_hang_verify_nor_outlive_it(
    tiny_llama: Path, tmp_path: Path, then_sleep: bool
) -> None:
    pids = tmp_path / "pids"
    evil = evil_copy(tiny_llama, tmp_path, fork_payload(pids, then_sleep))
    (tmp_path / "train.py").write_text(
        "from transformers import AutoModelForCausalLM, BitsAndBytesConfig\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(evil)!r}, trust_remote_code=True,\n"
        f"                                         quantization_config={CONFIG_4BIT})\n"
    )
    try:
        # Before the fix this waited for the 300 s sleepers (the pipes they hold): never
        # within this limit.
        result, report = verify(
            tmp_path, "train.py", "--trust-remote-code", "--timeout", "30", timeout=240
        )
        (site,) = report["sites"]
        if then_sleep:
            for version in ("original", "fixed"):
                error = site[version]["result"]["error"]
                assert error["type"] == "TimeoutError", error
        started = recorded(pids)
        assert started, result.stderr
        left = [pid for pid in started if alive(pid)]
        assert not left, f"still running after verify returned: {left}"
    finally:
        for pid in recorded(pids):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
