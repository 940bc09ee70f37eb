"""Child processes that can neither hang their parent nor outlive it (verify's and doctor's).

Each child starts in a session of its own, so it and everything it forks share one process
group, and the whole group is killed when the child ends or its deadline passes. The pipes are
read by threads: a grandchild that inherited stdout and keeps it open (a sleeping orphan) can
delay nothing, where ``communicate()`` would wait for its EOF forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Callable

POSIX = hasattr(os, "killpg")
POLL_S = 0.02
# After the group is killed the pipes reach EOF at once; this bounds the wait for a process
# that left the group (its own setsid) and still holds one.
DRAIN_S = 2.0


@dataclass
class Finished:
    """How a child ended and what it wrote."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool


class Child:
    """A started child process; ``finish`` returns by the deadline and leaves none of its
    process group alive. Raises OSError when it cannot be started."""

    def __init__(
        self,
        args: list[str],
        timeout: float,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.deadline = time.monotonic() + timeout
        self._done = False
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=POSIX,
        )
        self._out = bytearray()
        self._err = bytearray()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            _thread(_read, self.proc.stdout, self._out),
            _thread(_read, self.proc.stderr, self._err),
        ]
        if input is not None:
            assert self.proc.stdin is not None
            _thread(_write, self.proc.stdin, input.encode("utf-8"))

    def finish(self) -> Finished:
        timed_out = False
        try:
            if not self._exited():
                timed_out = True
        finally:
            # Also on an interrupt while waiting: nothing of the group may outlive this call.
            self.kill()
        self.proc.wait()
        end = time.monotonic() + DRAIN_S
        for reader in self._readers:
            reader.join(max(0.0, end - time.monotonic()))
        return Finished(self.proc.returncode, _text(self._out), _text(self._err), timed_out)

    def kill(self) -> None:
        """Kill the child and whatever it started (idempotent; nothing once reaped)."""
        if self._done:
            return
        self._done = True
        if POSIX:
            # The child is not reaped yet (``_exited`` waits without reaping), so its pid is
            # still this group's id and cannot name another process.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        elif self.proc.poll() is None:
            self.proc.kill()

    def _exited(self) -> bool:
        """Wait until the child exits or the deadline passes, leaving it unreaped."""
        if not hasattr(os, "waitid"):  # no WNOWAIT here: reaping is the only way to know
            try:
                self.proc.wait(max(0.0, self.deadline - time.monotonic()))
                return True
            except subprocess.TimeoutExpired:
                return False
        while True:
            try:
                found = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True
            if found is not None:
                return True
            if time.monotonic() >= self.deadline:
                return False
            time.sleep(POLL_S)


def run(
    args: list[str], timeout: float, input: str | None = None, env: dict[str, str] | None = None
) -> Finished:
    """Start ``args`` and finish it (OSError when it cannot be started)."""
    return Child(args, timeout, input, env).finish()


@contextmanager
def terminations_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SystemExit meanwhile, so the ``finally`` that kills a child's
    group runs: in a session of their own, children no longer get the terminal's signals."""
    if not POSIX or threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, leave) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _read(pipe: IO[bytes], into: bytearray) -> None:
    try:
        while True:
            chunk = os.read(pipe.fileno(), 65536)  # what is there, without waiting for more
            if not chunk:
                break
            into.extend(chunk)
    except (OSError, ValueError):
        pass
    finally:
        pipe.close()


def _write(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
    except (OSError, ValueError):  # the child exited without reading it all
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _text(data: bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")  # bitsandbytes prints emoji
