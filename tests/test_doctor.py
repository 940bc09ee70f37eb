"""``bnblint doctor``: the pure logic without torch, then real runs where torch is installed."""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import venv
from importlib import metadata, util
from pathlib import Path
from typing import Any

import pytest

from bnblint.doctor import logic
from bnblint.doctor.checks import Context, check_arch, check_bf16, check_bnb_load, check_gpu
from bnblint.doctor.checks import run_checks as run_all
from bnblint.doctor.cli import run_doctor
from bnblint.doctor.logic import FAIL, PASS, SKIP, WARN, Check
from bnblint.doctor.probe import Facts, Proc
from bnblint.doctor.render import to_json, to_text, verdict_line

SHIPPED = [
    "libbitsandbytes_cpu.so",
    *(f"libbitsandbytes_cuda{v}.so" for v in (118, 121, 124, 126, 128, 130, 132)),
    "libbitsandbytes_rocm64.so",
    "libbitsandbytes_rocm72.so",
]

# --- versions and floors ------------------------------------------------------------------


def test_parse_version_drops_local_and_pre_release_tags() -> None:
    assert logic.parse_version("2.13.0+cpu") == (2, 13, 0)
    assert logic.parse_version("5.0.0rc1") == (5, 0, 0)
    assert logic.parse_version("garbage") is None
    assert logic.at_least("0.46.1", "0.46.1") and logic.at_least("1.1", "1.1.0")
    assert not logic.at_least("0.45.5", "0.46.1") and not logic.at_least(None, "1")


def _violations(**versions: str | None) -> dict[str, str]:
    return {v.package: v.why for v in logic.floor_violations(versions)}


def test_transformers_5_floors() -> None:
    broken = _violations(
        transformers="5.24.0", bitsandbytes="0.45.5", accelerate="1.0.1", torch="2.6.0"
    )
    assert set(broken) == {"bitsandbytes", "accelerate"}
    assert "transformers 5" in broken["bitsandbytes"] and "transformers 5" in broken["accelerate"]


def test_bitsandbytes_050_needs_torch_24() -> None:
    assert "bitsandbytes 0.50" in _violations(bitsandbytes="0.50.2", torch="2.3.1")["torch"]


def test_floors_pass_and_ignore_missing_packages() -> None:
    good = dict(transformers="5.24.0", bitsandbytes="0.50.2", accelerate="1.15.0", torch="2.13.0")
    assert _violations(**good) == {}
    assert _violations(transformers="5.1.0", bitsandbytes=None, accelerate=None) == {}
    # Without transformers 5 the verify extra's own floor still applies.
    assert (
        "bnblint[verify]"
        in _violations(transformers="4.57.0", bitsandbytes="0.45.0")["bitsandbytes"]
    )


def test_missing_torch_remedy_insists_on_a_pinned_build() -> None:
    remedy = logic.missing_package_remedy("torch")
    assert "bnblint[verify]" in remedy and "torch==" in remedy and "unpinned" in remedy
    assert "bnblint[verify]" in logic.missing_package_remedy("bitsandbytes")


# --- architectures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cc", "cuda", "expected"),
    [
        ((6, 1), (12, 6), logic.NATIVE),  # Pascal runs the sm_60 code of cu126
        ((6, 1), (12, 8), logic.NONE),  # cu128 starts at sm_70
        ((7, 0), (13, 0), logic.NONE),  # V100 has nothing on CUDA 13
        ((7, 0), (12, 8), logic.NATIVE),
        ((9, 0), (13, 0), logic.NATIVE),
        ((12, 0), (12, 6), logic.NONE),  # Blackwell consumer needs cu128+ (no PTX to JIT)
        ((12, 0), (13, 2), logic.NATIVE),
        ((12, 1), (13, 0), logic.NATIVE),  # sm_121 runs sm_120 code
        ((8, 6), (11, 8), logic.NATIVE),
        ((5, 2), (11, 8), logic.NONE),  # Maxwell is gone from 0.50
    ],
)
def test_bitsandbytes_arch_table(cc: tuple[int, int], cuda: tuple[int, int], expected: str) -> None:
    assert logic.arch_support(cc, logic.BNB_CUDA_ARCHS[cuda]) == expected


def test_ptx_runs_on_newer_gpus_only() -> None:
    sass, ptx = logic.parse_arch_list(["sm_80", "sm_90", "compute_90"])
    assert (sass, ptx) == ((80, 90), (90,))
    assert logic.arch_support((12, 0), sass, ptx) == logic.JIT
    assert logic.arch_support((7, 5), sass, ptx) == logic.NONE
    assert logic.arch_support((8, 9), sass, ptx) == logic.NATIVE


def test_parse_cuobjdump() -> None:
    out = (
        "ELF file    1: libbitsandbytes_cuda130.1.sm_75.cubin\n"
        "ELF file    2: libbitsandbytes_cuda130.2.sm_120.cubin\n"
        "ELF file    3: libbitsandbytes_cuda130.3.sm_90a.cubin\n"
    )
    assert logic.parse_cuobjdump(out) == (75, 90, 120)


def test_arch_remedy_names_working_builds() -> None:
    pascal = logic.arch_remedy((6, 1), (12, 8), logic.BNB_CUDA_ARCHS)
    assert "CUDA 12.6" in pascal and "whl/cu126" in pascal and "BNB_CUDA_VERSION=126" in pascal
    # A CUDA 12 library cannot run on torch's CUDA 13 runtime: no override is offered.
    volta = logic.arch_remedy((7, 0), (13, 0), logic.BNB_CUDA_ARCHS)
    assert "CUDA 12.8" in volta and "BNB_CUDA_VERSION" not in volta
    assert "from source" in logic.arch_remedy((5, 0), (12, 8), logic.BNB_CUDA_ARCHS)


# --- native library choice -------------------------------------------------------------------


def test_library_follows_torch_cuda() -> None:
    c = logic.choose_library("13.0", True, SHIPPED, {})
    assert (c.name, c.status, c.version) == ("libbitsandbytes_cuda130.so", PASS, (13, 0))


@pytest.mark.parametrize(
    ("torch_cuda", "name"),
    [("12.9", "libbitsandbytes_cuda128.so"), ("12.0", "libbitsandbytes_cuda121.so")],
)
def test_library_falls_back_within_the_major(torch_cuda: str, name: str) -> None:
    c = logic.choose_library(torch_cuda, True, SHIPPED, {})
    assert (c.name, c.status) == (name, WARN)


def test_library_never_crosses_majors() -> None:
    c = logic.choose_library("14.0", True, SHIPPED, {})
    assert (c.name, c.exists, c.status) == ("libbitsandbytes_cuda140.so", False, FAIL)


def test_cpu_library_without_gpu() -> None:
    c = logic.choose_library(None, False, SHIPPED, {})
    assert (c.name, c.status, c.backend) == ("libbitsandbytes_cpu.so", PASS, "cpu")
    # A CUDA build of torch on a machine without GPU also loads the CPU library.
    assert logic.choose_library("12.8", False, SHIPPED, {}).name == "libbitsandbytes_cpu.so"
    assert logic.choose_library(None, False, ["libbitsandbytes_cuda128.so"], {}).status == FAIL


def test_override_is_flagged() -> None:
    c = logic.choose_library("12.8", True, SHIPPED, {"BNB_CUDA_VERSION": "126"})
    assert (c.name, c.status, c.override) == ("libbitsandbytes_cuda126.so", WARN, "126")
    assert "instead of libbitsandbytes_cuda128.so" in c.reason and "unset" in (c.remedy or "")
    same = logic.choose_library("12.8", True, SHIPPED, {"BNB_CUDA_VERSION": "128"})
    assert same.status == WARN and "same library" in same.reason


def test_override_to_a_missing_library_fails() -> None:
    c = logic.choose_library("12.8", True, SHIPPED, {"BNB_CUDA_VERSION": "125"})
    assert (c.name, c.exists, c.status) == ("libbitsandbytes_cuda125.so", False, FAIL)
    bad = logic.choose_library("12.8", True, SHIPPED, {"BNB_CUDA_VERSION": "12.6"})
    assert bad.status == FAIL and "not digits" in bad.reason


def test_override_without_gpu_is_a_warning() -> None:
    c = logic.choose_library(None, False, SHIPPED, {"BNB_CUDA_VERSION": "126"})
    assert (c.name, c.status) == ("libbitsandbytes_cpu.so", WARN)
    assert "ignored without a GPU" in c.reason


def test_rocm_and_windows_names() -> None:
    rocm = logic.choose_library(None, True, SHIPPED, {}, torch_hip="7.2.26015")
    assert (rocm.name, rocm.backend) == ("libbitsandbytes_rocm72.so", "rocm")
    assert logic.choose_library(None, True, SHIPPED, {"BNB_CUDA_VERSION": "1"}, "6.4").status == (
        PASS  # BNB_CUDA_VERSION does not apply to ROCm
    )
    win = logic.choose_library("12.8", True, ["libbitsandbytes_cuda128.dll"], {}, suffix=".dll")
    assert win.status == PASS


# --- compute dtype ---------------------------------------------------------------------------


def test_bf16_recommendation() -> None:
    assert logic.bf16_native((8, 0), True) and logic.bf16_native((9, 0), None)
    assert not logic.bf16_native((7, 5), True)  # torch may say True through emulation
    assert not logic.bf16_native((8, 6), False)
    assert logic.recommended_compute_dtype([True, True]) == "bfloat16"
    assert logic.recommended_compute_dtype([True, False]) == "float16"
    assert logic.recommended_compute_dtype([]) == "float16"


# --- checks over made-up facts (still no torch) ------------------------------------------------


def _ctx(gpus: list[tuple[str, tuple[int, int]]], torch_cuda: str | None = "12.8", **kw: Any):
    devices = [
        {
            "index": i,
            "name": name,
            "capability": list(cc),
            "bf16": cc >= (8, 0),
            "free_bytes": 40 * 2**30,
            "total_bytes": 80 * 2**30,
            "torch_arch_list": ["sm_50", "sm_60", "sm_70", "sm_80", "sm_90", "sm_120"],
        }
        for i, (name, cc) in enumerate(gpus)
    ]
    stages: dict[str, Any] = {
        "python": {"version": "3.11.7", "executable": "/x/python", "platform": "linux"},
        "packages": {
            "torch": "2.9.0",
            "transformers": "5.24.0",
            "accelerate": "1.15.0",
            "bitsandbytes": "0.50.2",
        },
        "env": kw.pop("env", {}),
        "bitsandbytes": {"dir": "/x/bitsandbytes", "libraries": SHIPPED},
        "nvidia_smi": {
            "found": bool(gpus),
            "gpus": [{"name": n, "driver": "580.1"} for n, _ in gpus],
        },
        "torch": {
            "version": "2.9.0",
            "cuda": torch_cuda,
            "hip": None,
            "cuda_available": bool(gpus) and kw.pop("available", True),
            "cuda_warnings": [],
            "driver_cuda": 13000,
        },
        "devices": devices,
    }
    return Context(facts=Facts(stages, Proc(["x"], rc=0)), **kw)


def test_pascal_on_cu128_fails_with_the_kernel_image_explanation() -> None:
    check = check_arch(_ctx([("Tesla P100", (6, 0))]))
    assert check.status == FAIL
    assert "no kernel image is available" in check.reason and "sm_60" in check.reason
    assert "cu126" in (check.remedy or "")


def test_hopper_on_cu130_passes() -> None:
    check = check_arch(_ctx([("H100", (9, 0))], torch_cuda="13.0"))
    assert check.status == PASS and "libbitsandbytes_cuda130.so" in check.reason


def test_gpu_seen_by_nvidia_smi_but_cpu_torch_fails() -> None:
    ctx = _ctx([("H100", (9, 0))], torch_cuda=None, available=False)
    check = check_gpu(ctx)
    assert check.status == FAIL and "CPU build" in check.reason and "whl/cu" in check.remedy


def test_no_gpu_is_a_skip() -> None:
    ctx = _ctx([], torch_cuda=None)
    assert check_gpu(ctx).status == SKIP and "CPU backend" in check_gpu(ctx).reason
    assert check_arch(ctx).status == SKIP and check_bf16(ctx).status == SKIP


def test_bf16_config_on_turing_warns() -> None:
    ctx = _ctx([("T4", (7, 5))], compute_dtype="bfloat16", config_source="pyproject.toml")
    check = check_bf16(ctx)
    assert check.status == WARN and 'compute-dtype = "float16"' in (check.remedy or "")
    ampere = check_bf16(_ctx([("A100", (8, 0))]))
    assert ampere.status == PASS and 'compute-dtype = "bfloat16"' in ampere.reason


@pytest.mark.parametrize(
    ("stdout", "rc", "status"),
    [
        ("...\nChecking that the library is importable and callable...\nSUCCESS!\n", 0, PASS),
        ("No CUDA, ROCm, or XPU detected; CPU library loaded successfully.\n", 0, PASS),
        ("No CUDA, ROCm, or XPU detected; CPU library failed to load.\n", 0, FAIL),
        ("See above for details on why the library failed to load.\n", 1, FAIL),
        ("WARNING: bitsandbytes is running as CPU-only!\n", 1, FAIL),
    ],
)
def test_bnb_diagnostics_output(stdout: str, rc: int, status: str) -> None:
    ctx = _ctx([])
    ctx.bnb_diag = Proc(["python", "-m", "bitsandbytes"], rc=rc, stdout=stdout)
    assert check_bnb_load(ctx).status == status


def test_long_bitsandbytes_errors_are_cut_to_one_line() -> None:
    from bnblint.doctor.checks import one_line

    page = (
        "RuntimeError: \nCUDA SETUP ERROR: Missing dependency: libcudart.so.12\n\n"
        "To fix this, make sure that:\n\nOriginal error: libcudart.so.12: cannot open shared "
        "object file: No such file or directory\n\nNative code method attempted to call: x()\n"
    )
    line = one_line(page)
    assert "\n" not in line and line.endswith("No such file or directory")
    assert one_line("ValueError: bad") == "ValueError: bad"


def test_a_crashing_check_costs_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from bnblint.doctor import checks

    def boom(ctx: Context) -> Check:
        raise KeyError("oops")

    monkeypatch.setattr(checks, "CHECKS", (("gpu", boom), ("python", checks.check_python)))
    out = run_all(_ctx([]))
    assert [(c.name, c.status) for c in out] == [("gpu", FAIL), ("python", PASS)]
    assert "crashed" in out[0].reason


def test_json_and_text_rendering() -> None:
    checks = [
        Check("python", PASS, "3.11"),
        Check("gpu", SKIP, "no GPU"),
        Check("bnb-load", FAIL, "broken", "reinstall"),
    ]
    data = json.loads(to_json(checks))
    assert data["verdict"] == FAIL and data["checks"][2]["remedy"] == "reinstall"
    assert set(data["checks"][0]) == {"name", "status", "reason", "remedy", "details"}
    buf = io.StringIO()
    to_text(checks, buf, color=False)
    text = buf.getvalue()
    assert "FAIL  bnb-load  broken" in text and "fix: reinstall" in text and "\x1b[" not in text
    assert text.rstrip().endswith(verdict_line(checks))
    assert verdict_line(checks[:2]).startswith("Verdict: PASS")


def test_cli_imports_no_heavy_module() -> None:
    # libcst is test_prefilter's business; the doctor must add none of these.
    code = (
        "import sys, bnblint.cli; heavy = ('torch', 'transformers', 'bitsandbytes',"
        " 'bnblint.doctor'); print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _doctor(python: Path | str | None, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BNB_CUDA_VERSION", "NO_COLOR")}
    cmd = [sys.executable, "-m", "bnblint", "doctor", *args]
    if python is not None:
        cmd += ["--python", str(python)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


def test_bare_interpreter_fails_without_crashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fresh venv has none of the packages: every missing one fails, nothing crashes.
    venv.create(tmp_path / "bare", with_pip=False)
    bindir = "Scripts" if sys.platform == "win32" else "bin"
    python = tmp_path / "bare" / bindir / ("python.exe" if sys.platform == "win32" else "python")
    # The probes inherit the environment (as they should); a PYTHONPATH would un-bare the venv.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert run_doctor(True, str(python), None, 120, False) == 1
    data = json.loads(capsys.readouterr().out)
    by_name = {c["name"]: c for c in data["checks"]}
    assert data["verdict"] == FAIL and by_name["python"]["status"] == PASS
    for name in ("torch", "transformers", "accelerate", "bitsandbytes"):
        assert by_name[name]["status"] == FAIL and "bnblint[verify]" in by_name[name]["remedy"]
    assert "torch==" in by_name["torch"]["remedy"]
    assert by_name["smoke-test"]["status"] == SKIP


# --- the real thing, where torch is installed -----------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    pytest.importorskip(
        "torch", reason="torch is not installed: `pip install torch==2.13.0 'bnblint[verify]'`"
    )
    proc = _doctor(None, tmp_path_factory.mktemp("doctor"), "--json")
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_real_run_shape_and_exit_code(real_run: tuple[int, dict[str, Any]]) -> None:
    rc, data = real_run
    assert set(data) == {"checks", "verdict"}
    assert rc == (1 if data["verdict"] == FAIL else 0)
    names = [c["name"] for c in data["checks"]]
    assert names == [
        "python",
        "torch",
        "transformers",
        "accelerate",
        "bitsandbytes",
        "gpu",
        "bnb-library",
        "bnb-load",
        "gpu-arch",
        "bf16",
        "smoke-test",
    ]
    for c in data["checks"]:
        assert set(c) == {"name", "status", "reason", "remedy", "details"}
        assert c["status"] in logic.STATUSES and c["reason"]
        assert c["remedy"] or c["status"] in (PASS, SKIP), c


def test_real_run_reports_installed_versions(real_run: tuple[int, dict[str, Any]]) -> None:
    import torch

    by_name = {c["name"]: c for c in real_run[1]["checks"]}
    assert by_name["python"]["details"]["version"] == platform.python_version()
    for name in ("torch", "transformers", "accelerate", "bitsandbytes"):
        assert by_name[name]["details"]["version"] == metadata.version(name)
        assert by_name[name]["status"] == PASS, by_name[name]
    assert by_name["torch"]["details"]["cuda"] == torch.version.cuda
    spec = util.find_spec("bitsandbytes")
    assert spec is not None and spec.submodule_search_locations
    folder = list(spec.submodule_search_locations)[0]
    shipped = sorted(f for f in os.listdir(folder) if f.startswith("libbitsandbytes_"))
    assert by_name["bnb-library"]["details"]["shipped"] == shipped


def test_real_run_on_this_machine(real_run: tuple[int, dict[str, Any]]) -> None:
    import torch

    by_name = {c["name"]: c for c in real_run[1]["checks"]}
    smoke = by_name["smoke-test"]
    assert by_name["bnb-load"]["status"] == PASS, by_name["bnb-load"]
    assert smoke["status"] == PASS, smoke
    if torch.cuda.is_available():
        assert by_name["gpu"]["status"] in (PASS, WARN)
        assert all(a["device"].startswith("cuda") for a in smoke["details"]["attempts"])
        return
    for name in ("gpu", "gpu-arch", "bf16"):
        assert by_name[name]["status"] == SKIP, by_name[name]
    assert by_name["bnb-library"]["details"]["selected"].startswith("libbitsandbytes_cpu")
    assert "CPU backend" in smoke["reason"]
    tried = {(a["device"], a["dtype"]) for a in smoke["details"]["attempts"] if a["ok"]}
    assert tried == {("cpu", "bfloat16"), ("cpu", "float32")}
