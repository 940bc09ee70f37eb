"""The doctor's pure decisions: version floors, architecture tables, library choice, dtype.

Nothing here imports torch or bitsandbytes, so all of it is unit-tested on any machine; the
probes (``probe.py``) gather the facts these functions decide on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: str
    reason: str
    remedy: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "remedy": self.remedy,
            "details": self.details,
        }


def verdict(checks: Sequence[Check]) -> str:
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


def worst(*statuses: str) -> str:
    order = (SKIP, PASS, WARN, FAIL)
    return max(statuses, key=order.index) if statuses else PASS


# --- versions -------------------------------------------------------------------------------


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """The release numbers of a version: ``"2.13.0+cpu"`` -> ``(2, 13, 0)``.

    Pre-release and local tags are dropped (``0.46.1.dev0`` counts as ``0.46.1``): good enough
    for floors, and it keeps ``packaging`` out of the linter's dependencies.
    """
    if not text:
        return None
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def at_least(version: str | None, floor: str) -> bool:
    have, need = parse_version(version), parse_version(floor)
    if have is None or need is None:
        return False
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


@dataclass(frozen=True)
class Floor:
    """``package`` must be at least ``minimum``, if ``when`` (package, version) is installed."""

    package: str
    minimum: str
    why: str
    when: tuple[str, str] | None = None


# Conditional floors come first: when both fail, the specific reason is the one reported.
FLOORS: tuple[Floor, ...] = (
    Floor(
        "bitsandbytes",
        "0.46.1",
        "transformers 5 refuses older bitsandbytes (BITSANDBYTES_MIN_VERSION)",
        ("transformers", "5"),
    ),
    Floor(
        "accelerate",
        "1.1.0",
        "transformers 5 needs accelerate >= 1.1.0 for device_map loads",
        ("transformers", "5"),
    ),
    Floor("torch", "2.4", "bitsandbytes 0.50 requires torch >= 2.4", ("bitsandbytes", "0.50")),
    # The `verify` extra of bnblint: the versions its checks and evidence were made with.
    Floor("torch", "2.4", "bnblint[verify] floor"),
    Floor("transformers", "4.56", "bnblint[verify] floor"),
    Floor("bitsandbytes", "0.46.1", "bnblint[verify] floor"),
    Floor("accelerate", "1.1.0", "bnblint[verify] floor"),
)

VERIFY_PACKAGES = ("torch", "transformers", "accelerate", "bitsandbytes")


@dataclass(frozen=True)
class FloorViolation:
    package: str
    found: str
    minimum: str
    why: str


def floor_violations(
    versions: Mapping[str, str | None], floors: Sequence[Floor] = FLOORS
) -> list[FloorViolation]:
    """The floors broken by the installed ``versions`` (missing packages break none)."""
    out: list[FloorViolation] = []
    seen: set[tuple[str, str]] = set()
    for floor in floors:
        found = versions.get(floor.package)
        if found is None or (floor.package, floor.minimum) in seen:
            continue
        if floor.when is not None and not at_least(versions.get(floor.when[0]), floor.when[1]):
            continue
        if not at_least(found, floor.minimum):
            seen.add((floor.package, floor.minimum))
            out.append(FloorViolation(floor.package, found, floor.minimum, floor.why))
    return out


TORCH_PIN_NOTE = (
    "install torch first, pinned to the build you choose, e.g. `pip install torch==2.13.0 "
    "--index-url https://download.pytorch.org/whl/cpu` (or .../whl/cu128 for CUDA 12.8): an "
    "unpinned `pip install torch` pulls a multi-GB CUDA build"
)


def missing_package_remedy(package: str, torch_installed: bool = True) -> str:
    if package == "torch":
        return f"{TORCH_PIN_NOTE}; then `pip install 'bnblint[verify]'`"
    if torch_installed:
        return "`pip install 'bnblint[verify]'` (keeps the installed torch)"
    return "`pip install 'bnblint[verify]'` after installing a pinned torch (see the torch check)"


def upgrade_remedy(violation: FloorViolation) -> str:
    if violation.package == "torch":
        return f"upgrade torch to >= {violation.minimum}: {TORCH_PIN_NOTE}"
    return f"`pip install -U '{violation.package}>={violation.minimum}'`"


# --- native library choice --------------------------------------------------------------------

_LIB_RE = re.compile(r"^libbitsandbytes_([a-z]+)(\d*)\.(so|dll|dylib)$")


def library_versions(shipped: Iterable[str], prefix: str) -> dict[tuple[int, int], str]:
    """``{(12, 8): "libbitsandbytes_cuda128.so", ...}`` for the ``prefix`` ("cuda"/"rocm")."""
    out: dict[tuple[int, int], str] = {}
    for name in shipped:
        m = _LIB_RE.match(name)
        if m and m.group(1) == prefix and m.group(2):
            ver = split_compact_version(m.group(2), prefix)
            if ver is not None:
                out[ver] = name
    return out


def split_compact_version(compact: str, prefix: str = "cuda") -> tuple[int, int] | None:
    """``"128"`` -> ``(12, 8)``; ROCm majors are one digit (``"72"`` -> ``(7, 2)``)."""
    cut = 1 if prefix == "rocm" else 2
    if not compact.isdigit() or len(compact) <= cut:
        return None
    return int(compact[:cut]), int(compact[cut:])


def cuda_tuple(version: str | None) -> tuple[int, int] | None:
    v = parse_version(version)
    return (v[0], v[1]) if v is not None and len(v) >= 2 else None


def dotted(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


@dataclass(frozen=True)
class LibraryChoice:
    """The native library bitsandbytes will load, and how the doctor judges that."""

    backend: str  # "cuda", "rocm" or "cpu"
    name: str  # file name bitsandbytes tries to load
    exists: bool
    status: str
    reason: str
    remedy: str | None = None
    version: tuple[int, int] | None = None  # CUDA/ROCm version of the library, if GPU
    override: str | None = None  # the BNB_CUDA_VERSION / BNB_ROCM_VERSION value, if set


def choose_library(
    torch_cuda: str | None,
    gpu_available: bool,
    shipped: Sequence[str],
    env: Mapping[str, str],
    torch_hip: str | None = None,
    suffix: str = ".so",
) -> LibraryChoice:
    """Mirror bitsandbytes 0.50's choice of native library.

    It follows ``torch.version.cuda`` (the CUDA torch was built with), not the system's CUDA:
    the exact version if shipped, else the highest older one of the same major, else the
    lowest newer one of the same major; never another major. ``BNB_CUDA_VERSION`` bypasses
    that and loads the named library with no fallback. Without a GPU the CPU library loads
    and the override is ignored.
    """
    is_hip = bool(torch_hip)
    prefix = "rocm" if is_hip else "cuda"
    var = "BNB_ROCM_VERSION" if is_hip else "BNB_CUDA_VERSION"
    override = env.get(var)
    runtime = cuda_tuple(torch_hip if is_hip else torch_cuda)
    shipped_list = ", ".join(sorted(shipped)) or "none"

    if not gpu_available or runtime is None:
        name = f"libbitsandbytes_cpu{suffix}"
        exists = name in shipped
        status, remedy = (PASS, None) if exists else (FAIL, _REINSTALL)
        reason = (
            f"{name}: no GPU visible to torch, so 4-bit runs on the bitsandbytes CPU backend"
            if exists
            else f"{name} is missing from the bitsandbytes package (shipped: {shipped_list})"
        )
        if override is not None:
            status = worst(status, WARN)
            reason += (
                f"; {var}={override} is set: ignored without a GPU, but it will force "
                f"libbitsandbytes_{prefix}{override}{suffix} once torch sees one"
            )
            remedy = remedy or f"`unset {var}` unless you mean it"
        return LibraryChoice("cpu", name, exists, status, reason, remedy, None, override)

    available = library_versions(shipped, prefix)
    auto_name, auto_version, fallback = _automatic(runtime, available, prefix, suffix)
    label = "ROCm" if is_hip else "CUDA"
    built = f"torch's {label} {dotted(runtime)}"

    if override is not None:
        if not override.isdigit():
            return LibraryChoice(
                prefix,
                f"libbitsandbytes_{prefix}{override}{suffix}",
                False,
                FAIL,
                f"{var}={override!r} is not digits: bitsandbytes raises and loads no native "
                "library (every 4-bit op fails)",
                f"`unset {var}` (or set digits such as 126 for {label} 12.6)",
                None,
                override,
            )
        name = f"libbitsandbytes_{prefix}{override}{suffix}"
        version = split_compact_version(override, prefix)
        if name not in shipped:
            return LibraryChoice(
                prefix,
                name,
                False,
                FAIL,
                f"{var}={override} forces {name}, which this bitsandbytes does not ship "
                f"(shipped: {shipped_list}); the library fails to load",
                f"`unset {var}`: bitsandbytes then picks {auto_name} for {built}",
                version,
                override,
            )
        same = name == auto_name
        return LibraryChoice(
            prefix,
            name,
            True,
            WARN,
            f"{var}={override} forces {name}"
            + (
                " (the same library the automatic choice picks)"
                if same
                else f" instead of {auto_name}, the automatic choice for {built}"
            ),
            f"`unset {var}` unless you need it: an override outlives the torch it was set for",
            version,
            override,
        )

    if auto_version is None:
        return LibraryChoice(
            prefix,
            auto_name,
            False,
            FAIL,
            f"torch is built with {label} {dotted(runtime)}, but bitsandbytes ships no "
            f"{label} {runtime[0]}.x library (shipped: "
            f"{shipped_list}); it falls back to nothing and every 4-bit op fails",
            f"install a torch built for a {label} version bitsandbytes ships, or a bitsandbytes "
            "release that ships this one",
            runtime,
            None,
        )
    reason = f"{auto_name}, the build for {built}"
    if fallback:
        return LibraryChoice(
            prefix,
            auto_name,
            True,
            WARN,
            f"{reason}: no exact {label} {dotted(runtime)} build, so bitsandbytes falls back "
            f"to {label} {dotted(auto_version)}",
            f"usually fine within {label} {runtime[0]}.x; if kernels fail, use a torch built "
            "for a shipped version",
            auto_version,
            None,
        )
    return LibraryChoice(prefix, auto_name, True, PASS, reason, None, auto_version, None)


_REINSTALL = "`pip install --force-reinstall --no-deps bitsandbytes` (the wheel looks damaged)"


def _automatic(
    runtime: tuple[int, int],
    available: Mapping[tuple[int, int], str],
    prefix: str,
    suffix: str,
) -> tuple[str, tuple[int, int] | None, bool]:
    """(library name, its version or None when none fits, whether it is a fallback)."""
    if runtime in available:
        return available[runtime], runtime, False
    same_major = [v for v in available if v[0] == runtime[0]]
    older = [v for v in same_major if v < runtime]
    pick = max(older) if older else min(same_major) if same_major else None
    if pick is None:
        compact = f"{runtime[0]}{runtime[1]}"
        return f"libbitsandbytes_{prefix}{compact}{suffix}", None, False
    return available[pick], pick, True


# --- GPU architectures ------------------------------------------------------------------------

# SASS architectures (10 * major + minor) in each CUDA build of the bitsandbytes 0.50.2 x86-64
# wheel, read with `cuobjdump --list-elf` (none embeds PTX, so nothing JIT-compiles for newer
# GPUs: sm_120 on cu126 has no kernels). PyTorch's cu128 and newer wheels dropped old GPUs
# and bitsandbytes followed, hence Pascal needs cu126 or older and Volta (sm70) fails on cu13.
BNB_ARCH_TABLE_VERSION = "0.50.2"
BNB_CUDA_ARCHS: dict[tuple[int, int], tuple[int, ...]] = {
    (11, 8): (60, 70, 75, 80, 86, 89, 90),
    (12, 1): (60, 70, 75, 80, 86, 89, 90),
    (12, 4): (60, 70, 75, 80, 86, 89, 90),
    (12, 6): (60, 70, 75, 80, 86, 89, 90),
    (12, 8): (70, 75, 80, 86, 89, 90, 100, 120),
    (13, 0): (75, 80, 86, 89, 90, 100, 120),
    (13, 2): (75, 80, 86, 89, 90, 100, 120),
}

NATIVE, JIT, NONE = "native", "jit", "none"


def sm(cc: tuple[int, int]) -> str:
    return f"sm_{cc[0]}{cc[1]}"


def arch_number(cc: tuple[int, int]) -> int:
    return cc[0] * 10 + cc[1]


def parse_arch_list(archs: Iterable[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``torch.cuda.get_arch_list()`` style names -> (SASS archs, PTX archs).

    ``sm_90``/``sm_90a`` are machine code, ``compute_90`` is PTX that the driver can compile
    for newer GPUs.
    """
    sass: set[int] = set()
    ptx: set[int] = set()
    for arch in archs:
        m = re.fullmatch(r"(sm|compute)_(\d+)[a-z]?", arch.strip())
        if m:
            (sass if m.group(1) == "sm" else ptx).add(int(m.group(2)))
    return tuple(sorted(sass)), tuple(sorted(ptx))


def parse_cuobjdump(output: str) -> tuple[int, ...]:
    """SASS archs from ``cuobjdump --list-elf`` (lines like ``ELF file 1: x.sm_90.cubin``)."""
    return tuple(sorted({int(n) for n in re.findall(r"\.sm_(\d+)[a-z]?\.cubin", output)}))


def arch_support(cc: tuple[int, int], sass: Iterable[int], ptx: Iterable[int] = ()) -> str:
    """How a GPU of compute capability ``cc`` runs code built for these archs.

    Machine code runs on GPUs of the same major and an equal or higher minor (sm_80 code runs
    on sm_86); PTX is compiled by the driver for the same or newer GPUs. Anything else is "no
    kernel image is available for execution on the device" / "invalid device function".
    """
    major, minor = cc
    if any(a // 10 == major and a % 10 <= minor for a in sass):
        return NATIVE
    if any(p <= arch_number(cc) for p in ptx):
        return JIT
    return NONE


def arch_range(archs: Sequence[int]) -> str:
    return f"sm_{min(archs)}-sm_{max(archs)}" if archs else "none"


def builds_supporting(
    cc: tuple[int, int], shipped_versions: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The shipped CUDA builds (per the table) whose machine code runs on ``cc``."""
    return sorted(
        v
        for v in shipped_versions
        if v in BNB_CUDA_ARCHS and arch_support(cc, BNB_CUDA_ARCHS[v]) == NATIVE
    )


def arch_remedy(
    cc: tuple[int, int], runtime: tuple[int, int] | None, shipped: Iterable[tuple[int, int]]
) -> str:
    good = builds_supporting(cc, shipped)
    if not good:
        return f"no bitsandbytes CUDA build supports {sm(cc)}: build bitsandbytes from source"
    newest = good[-1]
    tag = f"cu{newest[0]}{newest[1]}"
    text = (
        f"install a torch built for CUDA {dotted(newest)} or another of "
        f"{', '.join(dotted(v) for v in good)} (e.g. `pip install torch==<version> "
        f"--index-url https://download.pytorch.org/whl/{tag}`) so bitsandbytes loads "
        f"libbitsandbytes_cuda{newest[0]}{newest[1]}"
    )
    same_major = [v for v in good if runtime is not None and v[0] == runtime[0]]
    if same_major:
        pick = same_major[-1]
        text += f", or set BNB_CUDA_VERSION={pick[0]}{pick[1]} to load that build with this torch"
    return text


# --- compute dtype ----------------------------------------------------------------------------


def bf16_native(cc: tuple[int, int], torch_says: bool | None) -> bool:
    """Native bf16 needs Ampere (8.0) or newer; torch's own answer, when known, must agree."""
    return cc >= (8, 0) and torch_says is not False


def recommended_compute_dtype(native_flags: Sequence[bool]) -> str:
    """bfloat16 when every GPU has native bf16 (same range as fp32, no overflow), else float16."""
    return "bfloat16" if native_flags and all(native_flags) else "float16"
