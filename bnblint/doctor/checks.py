"""Turn the probes' facts into checks, using the pure decisions of ``logic``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bnblint.doctor import logic
from bnblint.doctor.logic import FAIL, PASS, SKIP, WARN, Check, LibraryChoice
from bnblint.doctor.probe import Facts, Proc, tail

GIB = 1024**3
LOW_FREE_BYTES = 1 * GIB  # below this even a small 4-bit model will not load
ARCH_ERRORS = ("no kernel image is available", "invalid device function")
ARCH_EXPLAIN = (
    "4-bit ops fail with 'no kernel image is available for execution on the device' / "
    "'invalid device function'"
)
SUFFIX = {"win32": ".dll", "darwin": ".dylib"}


@dataclass
class Context:
    """Facts plus what is derived from them once, shared by the checks."""

    facts: Facts
    compute_dtype: str = "float16"  # [tool.bnblint] compute-dtype (or its default)
    config_source: str | None = None  # the pyproject.toml it came from
    bnb_diag: Proc | None = None
    smoke: Proc | None = None
    smoke_plan: tuple[list[str], list[str]] | None = None
    timeout: float = 180.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def versions(self) -> dict[str, str | None]:
        return dict(self.facts.get("packages") or {})

    @property
    def torch(self) -> dict[str, Any] | None:
        value = self.facts.get("torch")
        return value if isinstance(value, dict) else None

    @property
    def devices(self) -> list[dict[str, Any]]:
        return list(self.facts.get("devices") or [])

    @property
    def gpu(self) -> bool:
        return bool(self.torch and self.torch.get("cuda_available") and self.devices)

    def choice(self) -> LibraryChoice | None:
        """The native library bitsandbytes will load, or None if it cannot be known."""
        files = self.facts.get("bitsandbytes") or {}
        if self.torch is None or not files.get("dir"):
            return None
        platform = (self.facts.get("python") or {}).get("platform", sys.platform)
        return logic.choose_library(
            self.torch.get("cuda"),
            self.gpu,
            files.get("libraries", []),
            self.facts.get("env") or {},
            torch_hip=self.torch.get("hip"),
            suffix=SUFFIX.get(platform, ".so"),
        )

    def recommended_dtype(self) -> str:
        return logic.recommended_compute_dtype(
            [
                logic.bf16_native(tuple(d["capability"]), d.get("bf16"))
                for d in self.devices
                if d.get("capability")
            ]
        )


def capability(dev: dict[str, Any]) -> tuple[int, int] | None:
    cap = dev.get("capability")
    return (int(cap[0]), int(cap[1])) if cap else None


def gib(n: float) -> str:
    return f"{n / GIB:.1f}"


def check_python(ctx: Context) -> Check:
    info = ctx.facts.get("python")
    if info is None:
        return Check("python", FAIL, f"cannot run the interpreter: {ctx.facts.died()}")
    return Check(
        "python",
        PASS,
        f"{info['version']} at {info['executable']}",
        details=dict(info),
    )


def check_package(ctx: Context, name: str) -> Check:
    if ctx.facts.get("packages") is None:
        return Check(name, FAIL, f"unknown: {ctx.facts.died()}")
    found = ctx.versions.get(name)
    details: dict[str, Any] = {"version": found}
    if found is None:
        python = (ctx.facts.get("python") or {}).get("executable", "this interpreter")
        return Check(
            name,
            FAIL,
            f"{name} is not installed for {python} (`--python PATH` checks another one)",
            logic.missing_package_remedy(name, ctx.versions.get("torch") is not None),
            details,
        )
    reason = found
    status = PASS
    remedy = None
    if name == "torch":
        t = ctx.torch
        if t is None:
            return Check(
                name,
                FAIL,
                f"torch {found} is installed but importing it failed: {ctx.facts.died()}",
                f"reinstall torch: {logic.TORCH_PIN_NOTE}",
                {**details, "stderr": tail(ctx.facts.proc.stderr if ctx.facts.proc else "")},
            )
        details.update(cuda=t.get("cuda"), hip=t.get("hip"))
        if t.get("cuda"):
            reason += f", built with CUDA {t['cuda']} (torch.version.cuda)"
        elif t.get("hip"):
            reason += f", built with ROCm {t['hip']}"
        else:
            reason += ", a CPU build (torch.version.cuda is None)"
    broken = [v for v in logic.floor_violations(ctx.versions) if v.package == name]
    if broken:
        status = FAIL
        reason += "; " + "; ".join(f"needs >= {v.minimum}: {v.why}" for v in broken)
        remedy = logic.upgrade_remedy(broken[0])
        details["floors"] = [{"minimum": v.minimum, "why": v.why} for v in broken]
    return Check(name, status, reason, remedy, details)


def check_gpu(ctx: Context) -> Check:
    t = ctx.torch
    smi = ctx.facts.get("nvidia_smi") or {}
    smi_gpus = smi.get("gpus") or []
    details: dict[str, Any] = {"nvidia_smi": smi_gpus if smi.get("found") else None}
    if t is None:
        return Check(
            "gpu", SKIP, "torch is not importable, so GPUs cannot be checked", None, details
        )
    details.update(
        torch_cuda=t.get("cuda"),
        driver_cuda=_driver_cuda(t.get("driver_cuda")),
        cuda_visible_devices=ctx.extra.get("cuda_visible_devices"),
    )
    if not ctx.gpu:
        warnings = [w.splitlines()[0] for w in t.get("cuda_warnings") or [] if w]
        details["torch_warnings"] = warnings
        if not smi_gpus:
            return Check(
                "gpu",
                SKIP,
                "no CUDA GPU visible (torch.cuda.is_available() is False): 4-bit on CPU uses "
                "the bitsandbytes CPU backend",
                None,
                details,
            )
        names = ", ".join(g.get("name", "?") for g in smi_gpus)
        if not t.get("cuda") and not t.get("hip"):
            return Check(
                "gpu",
                FAIL,
                f"nvidia-smi sees {names}, but torch {t.get('version')} is a CPU build",
                "install a CUDA build of torch, pinned: e.g. `pip install torch==<version> "
                "--index-url https://download.pytorch.org/whl/cu128`",
                details,
            )
        visible = ctx.extra.get("cuda_visible_devices")
        if visible is not None and not t.get("hip"):
            # nvidia-smi ignores CUDA_VISIBLE_DEVICES; torch does not. Hiding GPUs may be meant.
            return Check(
                "gpu",
                WARN,
                f"CUDA_VISIBLE_DEVICES={visible!r} hides {names} from torch: 4-bit runs on the "
                "bitsandbytes CPU backend",
                "unset CUDA_VISIBLE_DEVICES (or list the GPUs to use) if you meant to use them",
                details,
            )
        why = warnings[0] if warnings else "torch.cuda.is_available() is False"
        remedy: str | None = (
            "check CUDA_VISIBLE_DEVICES and that the NVIDIA driver works (`nvidia-smi`)"
        )
        driver = logic.cuda_tuple(details["driver_cuda"])
        built = logic.cuda_tuple(t.get("cuda"))
        if driver and built and driver < built:
            why = (
                f"the driver supports CUDA {logic.dotted(driver)}, torch is built with "
                f"CUDA {logic.dotted(built)}; {why}"
            )
            remedy = (
                "upgrade the NVIDIA driver, or install a torch built for CUDA "
                f"{logic.dotted(driver)} or older (pinned, e.g. --index-url "
                f"https://download.pytorch.org/whl/cu{driver[0]}{driver[1]})"
            )
        return Check(
            "gpu", FAIL, f"nvidia-smi sees {names}, but torch cannot use it: {why}", remedy, details
        )

    driver_text = _driver_text(ctx)
    details["driver"] = driver_text
    parts = []
    status = PASS
    remedy = None
    devs = []
    for dev in ctx.devices:
        cap = capability(dev)
        entry = {
            k: dev.get(k)
            for k in ("index", "name", "capability", "free_bytes", "total_bytes", "bf16", "error")
        }
        devs.append(entry)
        if dev.get("error") or cap is None:
            status = logic.worst(status, WARN)
            parts.append(f"cuda:{dev['index']}: {dev.get('error', 'no properties')}")
            remedy = remedy or "see the error; another process may hold the GPU"
            continue
        free, total = dev.get("free_bytes"), dev.get("total_bytes")
        mem = f", {gib(free)} of {gib(total)} GiB free" if free is not None and total else ""
        parts.append(f"cuda:{dev['index']} {dev.get('name')} ({logic.sm(cap)}{mem})")
        if free is not None and free < LOW_FREE_BYTES:
            status = logic.worst(status, WARN)
            remedy = "free GPU memory: another process holds it (`nvidia-smi` lists them)"
    details["devices"] = devs
    count = len(ctx.devices)
    reason = f"{count} GPU{'s' if count != 1 else ''}: " + "; ".join(parts)
    if driver_text:
        reason += f"; driver {driver_text}"
    return Check("gpu", status, reason, remedy, details)


def _driver_cuda(code: int | None) -> str | None:
    return f"{code // 1000}.{code % 1000 // 10}" if code else None


def _driver_text(ctx: Context) -> str | None:
    smi = ctx.facts.get("nvidia_smi") or {}
    release = next((g.get("driver") for g in smi.get("gpus") or [] if g.get("driver")), None)
    release = release or ctx.facts.get("nvml_driver")
    release = None if release is None else str(release)
    cuda = _driver_cuda((ctx.torch or {}).get("driver_cuda"))
    if release and cuda:
        return f"{release} (CUDA {cuda})"
    if release:
        return release
    return f"supports CUDA {cuda}" if cuda else None


def check_library(ctx: Context) -> Check:
    files = ctx.facts.get("bitsandbytes") or {}
    if not files.get("dir"):
        return Check("bnb-library", SKIP, "bitsandbytes is not installed")
    choice = ctx.choice()
    if choice is None:
        return Check("bnb-library", SKIP, "torch is not importable, so the choice is unknown")
    shipped = files.get("libraries", [])
    cuda = logic.library_versions(shipped, "cuda")
    others = [n for n in shipped if not n.startswith("libbitsandbytes_cuda")]
    builds = "CUDA " + ", ".join(logic.dotted(v) for v in sorted(cuda)) if cuda else ""
    if any(n.startswith("libbitsandbytes_cpu") for n in others):
        builds += " and CPU" if builds else "CPU"
    reason = choice.reason
    if builds and choice.status != FAIL:  # failures already list the files
        reason += f"; the package ships {builds} libraries"
    details = {
        "selected": choice.name,
        "exists": choice.exists,
        "backend": choice.backend,
        "override": choice.override,
        "torch_cuda": (ctx.torch or {}).get("cuda"),
        "package_dir": files.get("dir"),
        "shipped": shipped,
    }
    return Check("bnb-library", choice.status, reason, choice.remedy, details)


def check_bnb_load(ctx: Context) -> Check:
    proc = ctx.bnb_diag
    if proc is None:
        return Check("bnb-load", SKIP, "bitsandbytes or torch is not installed")
    out = proc.stdout + proc.stderr
    details = {"command": "python -m bitsandbytes", "rc": proc.rc, "output": tail(out, 30)}
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if proc.timed_out:
        return Check(
            "bnb-load",
            FAIL,
            f"`python -m bitsandbytes` {proc.failure(ctx.timeout)}",
            "run `python -m bitsandbytes` by hand; a hang usually means CUDA initialisation "
            "hangs (driver) or a first import compiling for a long time (raise --timeout)",
            details,
        )
    if proc.rc == 0 and last == "SUCCESS!":
        return Check("bnb-load", PASS, "`python -m bitsandbytes` ends with SUCCESS!", None, details)
    if proc.rc == 0 and "CPU library loaded successfully" in proc.stdout:
        return Check(
            "bnb-load",
            PASS,
            "`python -m bitsandbytes`: no GPU, the CPU library loads",
            None,
            details,
        )
    if "XPU native library loaded successfully" in proc.stdout:
        return Check("bnb-load", PASS, "`python -m bitsandbytes`: XPU library loads", None, details)
    why = proc.failure(ctx.timeout) if proc.rc != 0 else last or "no verdict printed"
    remedy = "read `python -m bitsandbytes`'s output (in details) for the cause"
    if "running as CPU-only" in out:
        why = "a GPU is present but the CPU-only library loaded"
    elif "cannot open shared object file" in out:
        why = "the library needs CUDA runtime libraries that are missing: " + _match(
            out, "cannot open shared object file"
        )
        remedy = (
            "use a torch whose CUDA matches the loaded library (BNB_CUDA_VERSION across CUDA "
            "majors needs that CUDA's runtime on LD_LIBRARY_PATH)"
        )
    elif "failed to load" in out or "VERSION MISMATCH" in out:
        why = _match(out, "failed to load") or _match(out, "VERSION MISMATCH") or why
    elif "value must be digits" in out:
        why = _match(out, "value must be digits")
        remedy = "`unset BNB_CUDA_VERSION`"
    return Check("bnb-load", FAIL, f"`python -m bitsandbytes` fails: {why}", remedy, details)


def one_line(error: str) -> str:
    """A multi-line error (bitsandbytes formats whole pages) cut to its telling line."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else error
    cause = next((ln for ln in lines if ln.startswith("Original error:")), None)
    return f"{lines[0]} {cause}" if cause else lines[0]


def _match(text: str, needle: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if needle in ln), "")


def check_arch(ctx: Context) -> Check:
    if ctx.torch is None:
        return Check("gpu-arch", SKIP, "torch is not importable")
    if not ctx.gpu:
        return Check("gpu-arch", SKIP, "no GPU: the CPU backend has no architecture limits")
    choice = ctx.choice()
    bnb_version = ctx.versions.get("bitsandbytes")
    results: list[dict[str, Any]] = []
    status = PASS
    reasons: list[str] = []
    remedy: str | None = None
    bnb_archs: tuple[int, ...] | None = None
    source = None
    if choice is not None and choice.backend == "cuda" and choice.exists and choice.version:
        dump = ctx.extra.get("cuobjdump")
        if dump:
            bnb_archs, source = logic.parse_cuobjdump(dump), "cuobjdump"
        elif choice.version in logic.BNB_CUDA_ARCHS:
            bnb_archs = logic.BNB_CUDA_ARCHS[choice.version]
            source = f"table of bitsandbytes {logic.BNB_ARCH_TABLE_VERSION}"
    shipped = logic.library_versions(
        (ctx.facts.get("bitsandbytes") or {}).get("libraries", []), "cuda"
    )
    # The table was read from one release: for others it is a good guess, not a verdict.
    unsure = (
        source is not None
        and source.startswith("table")
        and not (bnb_version or "").startswith("0.50.")
    )
    for dev in ctx.devices:
        cap = capability(dev)
        if cap is None:
            continue
        name = f"cuda:{dev['index']} {dev.get('name')} ({logic.sm(cap)})"
        row: dict[str, Any] = {"device": dev["index"], "capability": list(cap)}
        if bnb_archs is not None and choice is not None:
            support = logic.arch_support(cap, bnb_archs)
            row["bitsandbytes"] = support
            if support == logic.NONE:
                status = logic.worst(status, WARN if unsure else FAIL)
                reasons.append(
                    f"{name} has no kernels in {choice.name} (built for "
                    f"{_archs(bnb_archs)}): {ARCH_EXPLAIN}"
                )
                remedy = logic.arch_remedy(cap, choice.version, shipped)
        sass, ptx = logic.parse_arch_list(dev.get("torch_arch_list") or [])
        if sass or ptx:
            support = logic.arch_support(cap, sass, ptx)
            row["torch"] = support
            if support == logic.NONE:
                status = logic.worst(status, FAIL)
                reasons.append(
                    f"{name} is not among torch's architectures ({_archs(sass)}): torch's own "
                    "kernels fail the same way"
                )
                remedy = remedy or "install a torch build that supports this GPU (pinned)"
            elif support == logic.JIT:
                status = logic.worst(status, WARN)
                reasons.append(f"{name}: torch has only PTX for it (slow first run, JIT)")
        results.append(row)
    details = {
        "devices": results,
        "library": choice.name if choice else None,
        "library_archs": list(bnb_archs) if bnb_archs else None,
        "source": source,
    }
    if bnb_archs is None and choice is not None and choice.backend == "cuda" and choice.exists:
        status = logic.worst(status, WARN)
        reasons.append(f"architectures of {choice.name} unknown (no table entry, no cuobjdump)")
    if choice is not None and choice.backend == "rocm":
        reasons.append("ROCm: architectures not checked")
    if not reasons:
        caps = ", ".join(logic.sm(c) for c in {capability(d) for d in ctx.devices} if c)
        lib = f"{choice.name} ({_archs(bnb_archs or ())}, from {source})" if choice else "?"
        reasons.append(f"{caps} is covered by {lib} and by torch")
    elif unsure and status == WARN:
        reasons.append(f"(judged from the {source}; yours is {bnb_version})")
    return Check("gpu-arch", status, "; ".join(reasons), remedy, details)


def _archs(archs: tuple[int, ...] | list[int]) -> str:
    return ", ".join(f"sm_{a}" for a in archs) or "none"


def check_bf16(ctx: Context) -> Check:
    configured = ctx.compute_dtype
    where = ctx.config_source or "default, no [tool.bnblint]"
    details: dict[str, Any] = {"configured": configured, "config": ctx.config_source}
    bad_config = ctx.extra.get("config_error")
    if bad_config:
        return Check(
            "bf16",
            WARN,
            f"cannot read the configuration: {bad_config}",
            "fix [tool.bnblint] (`bnblint check` reports the same error)",
            details,
        )
    if ctx.torch is None:
        return Check("bf16", SKIP, "torch is not importable", None, details)
    if not ctx.gpu:
        return Check(
            "bf16",
            SKIP,
            "no GPU; the smoke test runs the CPU backend in bfloat16 and float32",
            None,
            details,
        )
    rec = ctx.recommended_dtype()
    native = {
        d["index"]: logic.bf16_native(c, d.get("bf16"))
        for d in ctx.devices
        if (c := capability(d)) is not None
    }
    details.update(recommended=rec, native_bf16=native)
    if rec == "bfloat16":
        reason = (
            'native bf16 on every GPU (sm_80+): recommend compute-dtype = "bfloat16" in '
            "[tool.bnblint]"
        )
        if configured != "bfloat16":
            reason += f" (now {configured}, {where}; float16 compute can overflow on bf16 models)"
        return Check("bf16", PASS, reason, None, details)
    old = ", ".join(f"cuda:{i}" for i, ok in native.items() if not ok)
    reason = f'no native bf16 on {old} (needs sm_80+): use compute-dtype = "float16"'
    if configured == "bfloat16":
        return Check(
            "bf16",
            WARN,
            f'{reason}; [tool.bnblint] has compute-dtype = "bfloat16" ({where}), so fixes '
            "would write a dtype these GPUs emulate slowly",
            'set compute-dtype = "float16" in [tool.bnblint]',
            details,
        )
    return Check("bf16", PASS, reason, None, details)


def smoke_plan(ctx: Context) -> tuple[list[str], list[str]] | None:
    """(devices, dtypes) for the smoke test, or None if it cannot run."""
    if ctx.torch is None or not ctx.versions.get("bitsandbytes"):
        return None
    if not ctx.gpu:
        return ["cpu"], ["bfloat16", "float32"]
    devices = [f"cuda:{d['index']}" for d in ctx.devices][:8]
    dtypes = list(dict.fromkeys([ctx.recommended_dtype(), ctx.compute_dtype]))
    return devices, dtypes


def check_smoke(ctx: Context) -> Check:
    proc, plan = ctx.smoke, ctx.smoke_plan
    if proc is None or plan is None:
        return Check("smoke-test", SKIP, "torch or bitsandbytes is not installed")
    attempts = [a for a in proc.json_lines() if "device" in a]
    details: dict[str, Any] = {"attempts": attempts, "stderr": tail(proc.stderr, 15)}
    devices, dtypes = plan
    backend = "the bitsandbytes CPU backend" if devices == ["cpu"] else "CUDA"
    good = [a for a in attempts if a.get("ok")]
    bad = [a for a in attempts if not a.get("ok")]
    expected = len(devices) * len(dtypes)
    if len(attempts) < expected:
        why = proc.failure(ctx.timeout) if not proc.ok else "missing results"
        bad.append({"device": "?", "dtype": "?", "error": f"smoke process: {why}"})
    what = "Linear4bit (nf4) forward"
    if not bad:
        combos = ", ".join(dtypes)
        where = ", ".join(devices)
        return Check(
            "smoke-test", PASS, f"{what} OK on {where} in {combos} ({backend})", None, details
        )
    first = bad[0]
    msg = f"{first['device']} {first['dtype']}: {one_line(str(first.get('error', 'failed')))}"
    text = " ".join(str(a.get("error", "")) for a in bad) + proc.stderr
    remedy = "run the failing case by hand; `python -m bitsandbytes` shows the library state"
    if "cannot open shared object file" in text:
        remedy = "see bnb-load: the native library does not load"
    if any(e in text for e in ARCH_ERRORS):
        msg += f" ({ARCH_EXPLAIN}: the GPU's architecture is missing from the library)"
        remedy = "see the gpu-arch check: install a torch/bitsandbytes build for this GPU"
    # On CPU the recommended dtype is bfloat16; float32 failing alone is only a warning.
    primary = dtypes[0]
    primary_failed = any(a["dtype"] in (primary, "?") for a in bad)
    status = FAIL if primary_failed or not good else WARN
    return Check("smoke-test", status, f"{what} failed on {msg}", remedy, details)


CHECKS: tuple[tuple[str, Callable[[Context], Check]], ...] = (
    ("python", check_python),
    ("torch", lambda c: check_package(c, "torch")),
    ("transformers", lambda c: check_package(c, "transformers")),
    ("accelerate", lambda c: check_package(c, "accelerate")),
    ("bitsandbytes", lambda c: check_package(c, "bitsandbytes")),
    ("gpu", check_gpu),
    ("bnb-library", check_library),
    ("bnb-load", check_bnb_load),
    ("gpu-arch", check_arch),
    ("bf16", check_bf16),
    ("smoke-test", check_smoke),
)


def run_checks(ctx: Context) -> list[Check]:
    out = []
    for name, fn in CHECKS:
        try:
            out.append(fn(ctx))
        except Exception as exc:  # a doctor bug must cost one line, not the report
            out.append(
                Check(
                    name,
                    FAIL,
                    f"the check itself crashed: {type(exc).__name__}: {exc}",
                    "please report this bnblint bug with `bnblint doctor --json`",
                )
            )
    return out
