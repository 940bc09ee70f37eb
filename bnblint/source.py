"""Reading and writing Python source files without losing a byte we did not mean to change."""

from __future__ import annotations

import io
import os
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path


class SourceError(Exception):
    """A file that cannot be read or decoded; the message is one line."""


@dataclass(frozen=True)
class SourceFile:
    path: Path
    text: str
    encoding: str  # as detected (PEP 263 cookie or BOM); ``utf-8-sig`` keeps a BOM


def decode(data: bytes) -> tuple[str, str]:
    """Text and encoding of Python source bytes. Newlines are kept exactly as written."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding), encoding
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot decode: {exc}") from exc


def read_source(path: Path, data: bytes | None = None) -> SourceFile:
    if data is None:
        data = read_bytes(path)
    text, encoding = decode(data)
    return SourceFile(path, text, encoding)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from exc


def write_source(source: SourceFile, text: str) -> None:
    """Replace the file atomically, keeping its encoding and permissions."""
    data = text.encode(source.encoding)
    write_atomic(source.path, data)


def write_atomic(path: Path, data: bytes) -> None:
    path = Path(os.path.realpath(path))  # write through a symlink, do not replace it
    directory = path.parent
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".bnblint", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
