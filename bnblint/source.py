"""Reading and writing Python source files without losing a byte we did not mean to change."""

from __future__ import annotations

import codecs
import errno
import hashlib
import math
import os
import re
import stat
import tempfile
import tokenize
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Larger files are refused unread: no real module is this big, and a link to a device or a
# generated blob must not take the run's memory. Notebooks carry their outputs (images).
MAX_SOURCE_BYTES = 10 * 1024 * 1024
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024

# Notebooks and documents are not Python source: no PEP 263 cookie applies to them.
_NOT_PYTHON = (".ipynb", ".md", ".markdown", ".rst")
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after the stat must not hang
_O_READ = os.O_RDONLY | _O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

# PEP 263's declaration; only used to check that the declared codec can read it back.
_COOKIE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)


class SourceError(Exception):
    """A file that cannot be read, decoded or written back; the message is one line."""


@dataclass(frozen=True)
class SourceFile:
    path: Path
    text: str
    encoding: str  # as detected (PEP 263 cookie or BOM); ``utf-8-sig`` keeps a BOM
    # SHA-256 of the bytes read: a write is refused when the file no longer holds them.
    digest: str | None = None


def decode(data: bytes) -> tuple[str, str]:
    """Text and encoding of Python source bytes. Newlines are kept exactly as written."""
    try:
        _check_cookie(data)
        encoding, _ = tokenize.detect_encoding(_readline(data))
        return data.decode(encoding), encoding
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot decode: {exc}") from exc


_BYTE_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _readline(data: bytes) -> Callable[[], bytes]:
    """A ``readline`` over ``data`` that ends lines where Python's tokenizer does (``\r``
    alone too): ``BytesIO.readline`` would hand a CR-only file over as one line, whose cookie
    ``tokenize.detect_encoding`` then misses."""
    lines = (m.group() for m in _BYTE_LINE.finditer(data))
    return lambda: next(lines, b"")


def _check_cookie(data: bytes) -> None:
    """Refuse what Python refuses to read: a header that is not UTF-8 and has no cookie (a
    UTF-16 file with a BOM), a codec unknown or unable to read its own declaration."""
    try:
        encoding, lines = tokenize.detect_encoding(_readline(data))
    except (SyntaxError, LookupError) as exc:
        raise SourceError(f"cannot decode: {exc}") from exc
    if not _cookie_readable(lines, encoding):
        # Python itself refuses such a file ("encoding problem: utf-16"); decoding it anyway
        # yields unrelated text that lints clean.
        raise SourceError(
            f"cannot read: unsupported encoding {_cookie_name(lines)} declared in the coding cookie"
        )


def _cookie_name(lines: Iterable[bytes]) -> str | None:
    for line in lines:
        m = _COOKIE.match(line.decode("latin-1"))
        if m:
            return m.group(1)
    return None


def _cookie_readable(lines: Sequence[bytes], encoding: str) -> bool:
    """Whether the declared codec reads its own declaration back (an ASCII-compatible one)."""
    declared = _cookie_name(lines)
    if declared is None:
        return True  # no cookie: UTF-8 or a UTF-8 BOM
    try:
        again = _cookie_name(b"".join(lines).decode(encoding).encode("utf-8").splitlines())
    except (UnicodeError, LookupError):
        return False
    return again is not None and codecs.lookup(again).name == codecs.lookup(declared).name


def read_source(path: Path, data: bytes | None = None) -> SourceFile:
    if data is None:
        data = read_bytes(path)
    text, encoding = decode(data)
    return SourceFile(path, text, encoding, _digest(data))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def size_cap(path: Path) -> int:
    return MAX_NOTEBOOK_BYTES if path.suffix == ".ipynb" else MAX_SOURCE_BYTES


def read_bytes(path: Path, cap: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes (default: by suffix).

    FIFOs, devices and sockets are refused before they are opened (a FIFO blocks the open, a
    device can be endless); the descriptor is checked again in case the path changed."""
    cap = size_cap(path) if cap is None else cap
    try:
        _check_readable(os.stat(path), cap)
        fd = os.open(path, _O_READ | _O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            _check_readable(os.fstat(handle.fileno()), cap)
            data = handle.read(cap + 1)  # the file may have grown since the fstat
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:  # an embedded NUL byte in the name
        raise SourceError(f"cannot read: {exc}") from exc
    if len(data) > cap:
        raise SourceError(f"cannot read: file too large (more than {_mib(cap)} MiB)")
    if path.suffix not in _NOT_PYTHON:
        # Here, not only in decode(): the byte prefilter skips a file before decoding it, and
        # a UTF-16 file's words never match, so it would pass as clean.
        _check_cookie(data)
    return data


def _check_readable(st: os.stat_result, cap: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise SourceError("cannot read: not a regular file")
    if st.st_size > cap:
        raise SourceError(f"cannot read: file too large ({_mib(st.st_size)} MiB > {_mib(cap)} MiB)")


def _mib(n: int) -> str:
    # Rounded up to a tenth: a file just over the cap must not read "10 MiB > 10 MiB".
    return f"{math.ceil(n * 10 / (1024 * 1024)) / 10:g}"


# ---------------------------------------------------------------------------------------------
# Writing back
# ---------------------------------------------------------------------------------------------


def linted_tree(paths: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    """The directories a fix may write into through a symlink: the current directory, each
    directory named and the directory of each file named (all resolved)."""
    roots = {os.path.realpath(os.getcwd())}
    for item in paths:
        name = os.fspath(item)
        if name == "-" or not os.path.exists(name):
            continue  # stdin, or a path reported as missing: nothing to widen the tree with
        target = name if os.path.isdir(name) else os.path.dirname(os.path.abspath(name))
        roots.add(os.path.realpath(target))
    return tuple(sorted(roots))


def _inside(path: str, roots: Iterable[str]) -> bool:
    for root in roots:
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def write_source(source: SourceFile, text: str, roots: Iterable[str] | None = None) -> None:
    """Write ``text`` back in the file's encoding, keeping its mode, owner, group, links and
    extended attributes. ``roots`` (default: the current directory, see :func:`linted_tree`)
    bound where a symlink may lead. Raises SourceError, with a one-line reason, when the file is
    read-only, leads out of the tree, changed since it was read, or cannot be written."""
    data = text.encode(source.encoding)
    expected = source.digest or _digest(source.text.encode(source.encoding))
    try:
        write_checked(source.path, data, expected, linted_tree(()) if roots is None else roots)
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror or exc}") from exc


def write_checked(path: Path, data: bytes, expected: str, roots: Iterable[str]) -> None:
    """Replace the content of ``path`` (SHA-256 ``expected``) with ``data``."""
    real = os.path.realpath(path)
    if not _inside(real, roots):
        # A link in the tree must not let a fix edit a file elsewhere (a shared config, a
        # file in site-packages): ruff and pre-commit users expect edits inside the repo.
        what = "the file is a symlink" if os.path.islink(path) else "the path leads"
        raise SourceError(f"cannot fix: {what} to a file outside the linted tree ({real})")
    st = os.stat(real)
    if not stat.S_ISREG(st.st_mode):
        raise SourceError("cannot fix: not a regular file")
    if not _writable(st):
        # The mode bits, not os.access: root may write anything, but a file made read-only
        # was made so on purpose (a vendored or generated file), as for `sed -i` users expect.
        raise SourceError("cannot fix: the file is read-only")
    # A new inode renamed over the file (atomic: a crash or a full disk leaves the old file)
    # cannot keep hard links, and cannot keep an owner other than the caller. Those files are
    # written in place instead, as ruff and black write every file: the inode, its links,
    # owner, ACLs and xattrs stay; space is reserved first so a full disk fails before the
    # first byte changes.
    if st.st_nlink > 1 or st.st_uid != _euid(st):
        _write_in_place(real, st, data, expected)
        return
    try:
        _replace(real, st, data, expected)
    except _NeedsInPlace:
        _write_in_place(real, st, data, expected)


class _NeedsInPlace(Exception):
    """The new inode could not be given the file's group or extended attributes."""


def _euid(st: os.stat_result) -> int:
    geteuid = getattr(os, "geteuid", None)
    return geteuid() if geteuid is not None else st.st_uid  # Windows: no owners to keep


def _writable(st: os.stat_result) -> bool:
    """Whether the mode bits let the caller write (root counts as the owner)."""
    if not hasattr(os, "geteuid"):
        return bool(st.st_mode & stat.S_IWRITE)
    uid = os.geteuid()
    if uid in (0, st.st_uid):
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid == os.getegid() or st.st_gid in os.getgroups():
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def _changed() -> SourceError:
    return SourceError("cannot fix: the file changed while bnblint was running")


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset) if hasattr(os, "pread") else os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _replace(real: str, st: os.stat_result, data: bytes, expected: str) -> None:
    directory = os.path.dirname(real)
    name = os.path.basename(real)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".bnblint", dir=directory)
    except PermissionError:
        raise _NeedsInPlace from None  # a file we may write in a directory we may not
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _copy_metadata(real, tmp, st)
        # Last moment before the rename: an editor or a second tool may have saved meanwhile.
        current = os.open(real, _O_READ | _O_CLOEXEC)
        try:
            if not _same_file(os.fstat(current), st) or _digest(_read_fd(current)) != expected:
                raise _changed()
        finally:
            os.close(current)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _copy_metadata(real: str, tmp: str, st: os.stat_result) -> None:
    """Group, mode and extended attributes of ``real`` onto ``tmp`` (chown first: it clears
    set-id bits)."""
    if hasattr(os, "chown") and os.stat(tmp).st_gid != st.st_gid:
        try:
            os.chown(tmp, -1, st.st_gid)
        except PermissionError:
            raise _NeedsInPlace from None  # a group the caller is not in
    os.chmod(tmp, stat.S_IMODE(st.st_mode))
    if not hasattr(os, "listxattr"):
        return
    try:
        names = os.listxattr(real)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for attr in names:
        try:
            os.setxattr(tmp, attr, os.getxattr(real, attr))
        except OSError:
            # trusted.* and some security.* need privileges the caller lacks: the file
            # keeps them only if written in place.
            raise _NeedsInPlace from None


def _write_in_place(real: str, st: os.stat_result, data: bytes, expected: str) -> None:
    fd = os.open(real, os.O_RDWR | _O_NONBLOCK | _O_CLOEXEC | getattr(os, "O_BINARY", 0))
    try:
        if not _same_file(os.fstat(fd), st) or _digest(_read_fd(fd)) != expected:
            raise _changed()
        if len(data) > st.st_size and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, len(data))
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                    raise  # ENOSPC: nothing written yet
        os.lseek(fd, 0, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
