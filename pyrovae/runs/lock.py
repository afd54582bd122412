"""One writer per run folder: the lock file ``run.lock``.

The process that trains into a run folder (``pyrovae train``, ``--resume``,
:meth:`pyrovae.api.Estimator.fit` with ``run_dir``, :func:`pyrovae.api.resume`) holds
the folder for as long as it trains. A second writer, such as a second
``pyrovae train -o RUN --force`` or a ``--resume`` while the first still runs, fails
with :class:`~pyrovae.errors.RunLockedError` (one line naming the holder) before it
writes anything.

The lock is two things at once:

* an exclusive ``flock`` on ``run.lock``, held through an open file descriptor. The
  kernel drops it when the process ends, however it ends (``SIGKILL`` included), so
  it needs no clean-up and two processes that start together cannot both get it;
* the file's content, a JSON object naming the holder (``pid``, ``host``, ``started``
  and, on Linux, the process start time from ``/proc``, which tells a reused PID from
  the original). It names the holder in the error and serves where ``flock`` is not
  available (some network file systems): a lock whose process is gone (on this host:
  no process with that PID and start time) is stale and taken over. A lock written on
  another host cannot be checked from here; if its process is gone (a job killed on
  another node), delete the lock file.

The lock file is removed on release (normal end, exceptions, ``KeyboardInterrupt``).
Holding is re-entrant within one thread (``pyrovae train`` holds the folder, the
estimator's ``fit`` inside it holds it again); another thread of the same process is
refused like another process.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RunLockedError
from .names import LOCK

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: the file's content alone
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

#: How long to wait for a holder that has just taken the lock to write its name.
_NAME_WAIT_S = 2.0


def lock_path(run_dir: str | Path) -> Path:
    """``run_dir/run.lock``."""
    return Path(run_dir) / LOCK


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``);
    None where it cannot be read. With the PID it identifies a process: a PID that is
    reused by a later process comes with a later start time."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    try:
        return None if fields[0] == "Z" else int(fields[19])  # field 22: starttime
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` runs on this host (and, given ``start``, is the process
    that started then rather than a later one with the same PID). Zombies (ended, not
    yet reaped) count as gone."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    now = process_start(pid)
    if now is None:  # no /proc (or a zombie): trust kill() unless /proc says zombie
        return not _is_zombie(pid)
    return start is None or now == start


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def _holder_record() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid,
        "host": platform.node(),
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "process_start": process_start(pid),
    }


def read_holder(run_dir: str | Path) -> dict[str, Any] | None:
    """The holder named in the run folder's lock file, or None (no file, or no name in
    it yet)."""
    try:
        text = lock_path(run_dir).read_text()
        holder = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and "pid" in holder else None


def holder_alive(holder: dict[str, Any]) -> bool:
    """Whether the process a lock file names may still run: on this host, checked; on
    another host it cannot be checked and counts as running."""
    if holder.get("host") != platform.node():
        return True
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    start = holder.get("process_start")
    return pid_alive(pid, int(start) if isinstance(start, int) else None)


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "another process"
    text = f"process {holder.get('pid')} on {holder.get('host') or 'an unknown host'}"
    if holder.get("started"):
        text += f" (since {holder['started']})"
    return text


def _locked_error(run_dir: Path, holder: dict[str, Any] | None, fd: int | None = None):
    if holder is None and fd is not None:  # taken a moment ago: wait for the name
        deadline = time.monotonic() + _NAME_WAIT_S
        while holder is None and time.monotonic() < deadline:
            time.sleep(0.02)
            holder = read_holder(run_dir)
    message = f"run folder {str(run_dir)!r} is in use by {_describe(holder)}"
    if holder is not None and holder.get("host") != platform.node():
        message += f"; if that process has ended, delete {str(lock_path(run_dir))!r}"
    else:
        message += "; wait for it to finish or stop it"
    return RunLockedError(message)


class RunLock:
    """The lock of one run folder, held by this process (see the module docstring).

    Use :func:`hold` rather than this class: it makes holding re-entrant.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = lock_path(self.run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (creating ``run.lock``); raise :class:`RunLockedError` if a live
        process holds it. A stale lock (its process gone) is taken over."""
        if self._fd is not None:
            return self
        for _ in range(10):  # the file may be released (unlinked) while we open it
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if self._try_flock(fd) and self._same_file(fd):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        else:  # pragma: no cover - needs another process to churn the file 10 times
            raise _locked_error(self.run_dir, read_holder(self.run_dir))
        try:
            holder = read_holder(self.run_dir)
            if holder is not None and holder.get("pid") != os.getpid() and holder_alive(holder):
                raise _locked_error(self.run_dir, holder)  # alive, but holds no flock
            if holder is not None:
                logger.warning(
                    "taking over the stale lock of %s in %s", _describe(holder), self.run_dir
                )
            record = json.dumps(_holder_record()) + "\n"
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, record.encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _try_flock(self, fd: int) -> bool:
        """Lock ``fd`` exclusively; False if the file is gone; raise if another holds it."""
        if fcntl is None:  # pragma: no cover
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _locked_error(self.run_dir, read_holder(self.run_dir), fd) from None
        except OSError as exc:  # no flock on this file system: the content decides
            logger.debug("flock unavailable on %s (%s); using the PID alone", self.path, exc)
        return True

    def _same_file(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at the lock's path (not released meanwhile)."""
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove ``run.lock`` and drop the lock (a no-op if not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            holder = read_holder(self.run_dir)
            if holder is not None and holder.get("pid") == os.getpid() and self._same_file(fd):
                self.path.unlink()
        except OSError as exc:
            logger.warning("cannot remove %s: %s", self.path, exc)
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_registry_lock = threading.Lock()
_held: dict[str, tuple[RunLock, int, int]] = {}  # real path -> (lock, thread, depth)


@contextlib.contextmanager
def hold(run_dir: str | Path | None, create: bool = True) -> Iterator[RunLock | None]:
    """Hold the run folder ``run_dir`` for the ``with`` block.

    Re-entrant in one thread: an inner ``hold`` of a folder this thread holds is a
    no-op. ``run_dir=None`` (training without a run folder) holds nothing, and so does
    a folder that does not exist unless ``create`` (then it is created).

    Raises
    ------
    RunLockedError
        Another process, or another thread of this one, holds the folder.
    """
    if run_dir is None:
        yield None
        return
    run_dir = Path(run_dir)
    if not create and not run_dir.is_dir():
        yield None
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(run_dir)
    me = threading.get_ident()
    with _registry_lock:
        entry = _held.get(key)
        if entry is not None and entry[1] != me:
            raise RunLockedError(
                f"run folder {str(run_dir)!r} is in use by another thread of this process"
            )
        if entry is None:
            lock = RunLock(run_dir).acquire()
            entry = (lock, me, 0)
        _held[key] = (entry[0], me, entry[2] + 1)
    try:
        yield entry[0]
    finally:
        with _registry_lock:
            lock, _, depth = _held[key]
            if depth > 1:
                _held[key] = (lock, me, depth - 1)
            else:
                del _held[key]
                lock.release()
