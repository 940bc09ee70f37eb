"""Gather the environment facts the doctor decides on; run as a script in a child process.

It runs under the interpreter being diagnosed, which need not have bnblint installed, so it
imports only the standard library and torch. Each stage prints one JSON line as soon as it is
known: if importing torch or initialising CUDA crashes the process, the earlier lines survive
and the doctor says which stage died.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import warnings
from importlib import metadata, util
from typing import Any

PACKAGES = ("torch", "transformers", "accelerate", "bitsandbytes")


def emit(stage: str, value: Any) -> None:
    print(json.dumps({"stage": stage, "value": value}), flush=True)


def run(cmd: list[str], timeout: float = 20) -> dict[str, Any]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return {"rc": out.returncode, "stdout": out.stdout, "stderr": out.stderr[-2000:]}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"rc": None, "error": f"{type(exc).__name__}: {exc}"}


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def bnb_files() -> dict[str, Any]:
    # find_spec on a top-level package locates it without running its __init__ (which would
    # load the native library in this process).
    spec = util.find_spec("bitsandbytes")
    if spec is None or not spec.submodule_search_locations:
        return {"dir": None, "libraries": []}
    folder = list(spec.submodule_search_locations)[0]
    libs = sorted(f for f in os.listdir(folder) if f.startswith("libbitsandbytes_"))
    return {"dir": folder, "libraries": libs}


def nvidia_smi() -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"found": False}
    query = "index,name,driver_version,compute_cap,memory.free,memory.total"
    res = run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"])
    gpus = []
    for line in res.get("stdout", "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 6:
            keys = ("index", "name", "driver", "capability", "free_mib", "total_mib")
            gpus.append(dict(zip(keys, parts)))
    return {"found": True, "rc": res.get("rc"), "gpus": gpus, "error": res.get("error")}


def torch_facts() -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        facts["cuda_available"] = bool(torch.cuda.is_available())
    # torch explains an unusable GPU (driver too old, ...) only through a warning.
    facts["cuda_warnings"] = [str(w.message) for w in caught]
    facts["driver_cuda"] = driver_cuda_version()
    return facts


def driver_cuda_version() -> int | None:
    """The newest CUDA the installed driver supports (13000 = 13.0), from libcuda itself."""
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        value = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(value)) == 0:
            return value.value
    return None


def device_facts() -> list[dict[str, Any]]:
    import inspect

    import torch

    takes_emulation = (
        "including_emulation" in inspect.signature(torch.cuda.is_bf16_supported).parameters
    )
    try:
        arch_list = torch.cuda.get_arch_list()
    except Exception:
        arch_list = []
    devices = []
    for i in range(torch.cuda.device_count()):
        dev: dict[str, Any] = {"index": i, "torch_arch_list": arch_list}
        try:
            props = torch.cuda.get_device_properties(i)
            dev.update(name=props.name, capability=[props.major, props.minor])
            dev["total_bytes"] = props.total_memory
            with torch.cuda.device(i):
                dev["bf16"] = (
                    torch.cuda.is_bf16_supported(including_emulation=False)
                    if takes_emulation
                    else torch.cuda.is_bf16_supported()
                )
            dev["free_bytes"], _ = torch.cuda.mem_get_info(i)
        except Exception as exc:
            dev["error"] = f"{type(exc).__name__}: {exc}"
        devices.append(dev)
    return devices


def driver_from_nvml() -> str | None:
    try:
        import pynvml  # nvidia-ml-py, often installed next to torch

        pynvml.nvmlInit()
        value = pynvml.nvmlSystemGetDriverVersion()
        return value.decode() if isinstance(value, bytes) else str(value)
    except Exception:
        return None


def main() -> None:
    emit(
        "python",
        {
            "version": platform.python_version(),
            "executable": sys.executable,
            "platform": sys.platform,
            "machine": platform.machine(),
        },
    )
    emit("packages", versions())
    env = {k: os.environ[k] for k in ("BNB_CUDA_VERSION", "BNB_ROCM_VERSION") if k in os.environ}
    emit("env", env)
    files = bnb_files()
    emit("bitsandbytes", files)
    emit("nvidia_smi", nvidia_smi())
    emit("torch", torch_facts())
    import torch

    if torch.cuda.is_available():
        emit("devices", device_facts())
        emit("nvml_driver", driver_from_nvml())


if __name__ == "__main__":
    main()
