"""Process plumbing of the local stack: detached spawns, pid files, one-shot commands, signals, port probes.

Owns the rules that keep ``renja down`` from ever signalling a stranger: a pid is only trusted while its
process lives and its command line still contains the marker we started it with (or it is our own
child, reaped here so that it never lingers as a zombie).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


class StackError(RuntimeError):
    """A component could not be prepared, started or stopped; the message names the log file to read."""


# Children started by *this* Python process. Kept so that a child that dies is reaped (poll) instead
# of lingering as a zombie that os.kill(pid, 0) would still report as alive.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (reaps it if it is our own dead child)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 (state) follows the parenthesised command name, which may itself contain spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    """``/proc/<pid>/cmdline`` with NULs as spaces; ``""`` when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def read_pid(pid_file: Path, marker: str) -> int | None:
    """The pid on ``pid_file``'s first line if that process lives and its command line contains ``marker``.

    The marker check keeps us from ever signalling an unrelated process that reused a stale pid.
    """
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return None
    if pid in _CHILDREN:
        # Our own child: no need to match (and right after spawn the JDK launcher may re-exec
        # itself, during which /proc/<pid>/cmdline reads empty).
        return pid
    return pid if marker in cmdline(pid) else None


def spawn(argv: list[str], *, log_path: Path, pid_file: Path, cwd: Path, env: Mapping[str, str]) -> int:
    """Start ``argv`` detached (own session and process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


async def wait_gone(pid: int, timeout_s: float) -> bool:
    """Poll every 0.1 s until ``pid`` is gone; ``False`` if it is still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def terminate(pid: int, timeout_s: float) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if it is still there after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if await wait_gone(pid, timeout_s):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if not await wait_gone(pid, 10.0):
        raise StackError(f"process {pid} survived SIGKILL")


async def run_once(
    argv: list[str],
    *,
    log_path: Path,
    timeout_s: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> None:
    """Run a one-shot command to completion, output appended to ``log_path``; ``StackError`` if it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=new_session,
        )
        try:
            returncode = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise StackError(f"{shlex.join(argv)} timed out after {timeout_s:.0f}s; see {log_path}") from None
    if returncode != 0:
        raise StackError(f"{shlex.join(argv)} exited with {returncode}; see {log_path}")


async def tcp_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout_s`` seconds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
