"""Start, find and stop the local stack's server processes by PID file, and by a mark when the file fails.

Each service runs in its own process session, so that ``down`` can stop the whole tree it started (MLflow's
uvicorn workers, PostgreSQL's backends) and nothing else. A PID file records the PID and the process's start
time: after a crash or a reboot a PID may belong to another program, and the start time tells them apart. The
file is written atomically (temporary file, fsync, rename), but it can still be lost or damaged by hand; so each
service also carries a mark in its environment (``LOCAL_STACK_PID_FILE=<its PID file>``, inherited by every
process it starts), and a missing or damaged file makes ``down`` find the service's processes by that mark.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from local_stack.errors import StackError
from local_stack.files import write_atomically


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports the OS reports free right now (internal ports, and the test suite's stack)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def drop_privileges(user: str | None) -> dict:
    """``subprocess`` arguments that run a child as ``user`` with that user's group and no other.

    Keeping root's group would make root-owned 0700-group directories (pytest's, mkdtemp's) unreadable to it.
    """
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a service log, for error messages that must show why a start failed."""
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or f"(log {path} is empty)"


#: Environment variable every process of a service inherits: the path of the service's PID file (unique per state
#: directory and service), so that its processes can be found without that file.
MARK = "LOCAL_STACK_PID_FILE"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@dataclass(frozen=True)
class ProcessState:
    """A service's process as its PID file and the process table show it."""

    #: The leader's PID while it runs, else None.
    pid: int | None
    #: The PID the file records (None without a readable PID file).
    recorded_pid: int | None
    #: Live members of a dead leader's process group (e.g. MLflow's uvicorn workers after kill -9 of the leader).
    orphans: tuple[int, ...]
    #: The PID file exists but cannot be read (damaged by hand, a crash or a full disk); the processes above were
    #: then found by their mark.
    damaged: bool = False

    @property
    def stale(self) -> bool:
        """A PID file whose process is gone (crash, kill -9, reboot) with nothing left of its group."""
        return self.pid is None and self.recorded_pid is not None and not self.orphans


@dataclass(frozen=True)
class ServiceProcess:
    """One server process of the stack, found again through its PID file."""

    name: str
    pid_file: Path
    log_file: Path
    #: PostgreSQL wants SIGINT (fast shutdown); SIGTERM would wait for every client to disconnect.
    stop_signal: signal.Signals = signal.SIGTERM
    #: Seconds between the stop signal and SIGKILL.
    stop_timeout: float = 15.0

    def inspect(self) -> ProcessState:
        """What the PID file says and what is left of it, without changing anything (``status`` only reads)."""
        record = self._read_record()
        if record is None:
            return self._find_by_mark()
        pid, started = record
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - started) >= 1.0:
                # The PID now belongs to another program, so our group was already empty: Linux does not hand
                # out a PID that still names a live process group.
                return ProcessState(None, pid, ())
            if proc.status() != psutil.STATUS_ZOMBIE:
                return ProcessState(pid, pid, ())
        except psutil.NoSuchProcess:
            pass
        alive = tuple(proc.pid for proc in self._group_members(pid) if proc.pid != pid and _alive(proc))
        return ProcessState(None, pid, alive)

    def running_pid(self) -> int | None:
        """PID of the live process this file records, or None; a stale file is cleaned up on the way, and the
        orphans a dead leader left in its group are stopped (``up`` and ``down`` use this; ``status`` does not)."""
        state = self.inspect()
        if state.pid is not None:
            if state.damaged or not self.pid_file.exists():
                self._write_record(state.pid)  # found by its mark: give it a sound PID file again
            return state.pid
        if state.recorded_pid is None and not state.damaged:
            return None
        if state.orphans:
            self._reap_orphans(state.recorded_pid, state.orphans)
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        user: str | None = None,
        umask: int = -1,
    ) -> int:
        """Start the service in a new session with output appended to its log; return its PID.

        ``umask`` (e.g. 0o077) applies to the service alone, for data files only their owner may read.
        """
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**env, MARK: str(self.pid_file)},
                    cwd=cwd,
                    **drop_privileges(user),
                    start_new_session=True,
                    umask=umask,
                )
            except OSError as exc:
                raise StackError(
                    f"{self.name}: cannot run {argv[0]} ({exc.strerror}); run `make venv` to install it"
                ) from None
        try:
            self._write_record(proc.pid)
        except OSError as exc:
            self._signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise StackError(
                f"{self.name}: cannot write {self.pid_file} ({exc.strerror}); free space or fix its permissions"
            ) from None
        return proc.pid

    def _write_record(self, pid: int) -> None:
        started = psutil.Process(pid).create_time()
        write_atomically(self.pid_file, json.dumps({"pid": pid, "started": started}))

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until it passes; fail with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running_pid() is None:
                raise StackError(
                    f"{self.name} exited during start-up; last lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.3)
        raise StackError(
            f"{self.name} did not become ready ({what}) within {timeout:.0f}s; "
            f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
        )

    def stop(self) -> bool:
        """Stop the service's whole process group and verify every member is gone; False if nothing of it ran."""
        had_orphans = bool(self.inspect().orphans)
        pid = self.running_pid()  # stops the orphans of a dead leader on the way
        if pid is None:
            return had_orphans
        members = self._tree(pid)
        self._signal_group(pid, self.stop_signal)
        _, alive = psutil.wait_procs(members, timeout=self.stop_timeout)
        if alive:
            self._signal_group(pid, signal.SIGKILL)
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            _, alive = psutil.wait_procs(alive, timeout=5)
        alive += [proc for proc in self._marked() if proc not in alive]
        if alive:
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            _, alive = psutil.wait_procs(alive, timeout=5)
        if alive:
            raise StackError(f"{self.name}: processes {[p.pid for p in alive]} survived SIGKILL; stop them by hand")
        self.pid_file.unlink(missing_ok=True)
        return True

    def _marked(self) -> list[psutil.Process]:
        """Live processes that carry this service's mark (whatever their PID file says)."""
        found = []
        mark = str(self.pid_file)
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if proc.environ().get(MARK) == mark and _alive(proc):
                    found.append(proc)
        return found

    def _find_by_mark(self) -> ProcessState:
        """Without a readable PID file: the service's leader (its session leader) and the rest, by their mark."""
        damaged = self.pid_file.exists()
        marked = self._marked()
        if not marked:
            return ProcessState(None, None, (), damaged)
        leaders = [proc for proc in marked if proc.pid == _pgid(proc.pid)]
        if leaders:
            return ProcessState(leaders[0].pid, leaders[0].pid, (), damaged)
        pids = tuple(sorted(proc.pid for proc in marked))
        return ProcessState(None, _pgid(pids[0]) or pids[0], pids, damaged)

    def _read_record(self) -> tuple[int, float] | None:
        try:
            data = json.loads(self.pid_file.read_text())
            return int(data["pid"]), float(data["started"])
        except (OSError, ValueError, KeyError, TypeError):
            # Missing or unreadable: no record (a start writes a fresh one over it).
            return None

    def _tree(self, pid: int) -> list[psutil.Process]:
        """The leader, its process group and its descendants (PostgreSQL's children start sessions of their own)."""
        members = {proc.pid: proc for proc in self._group_members(pid)}
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(pid).children(recursive=True):
                members.setdefault(child.pid, child)
        return list(members.values())

    @staticmethod
    def _group_members(pgid: int) -> list[psutil.Process]:
        members = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getpgid(proc.pid) == pgid:
                    members.append(proc)
        return members

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    def _reap_orphans(self, pgid: int, pids: Sequence[int] = ()) -> None:
        """After a crash of the session leader its children may live on in its group: stop them too (and the
        marked processes ``pids`` found without a PID file, wherever their group)."""
        members = {proc.pid: proc for proc in self._group_members(pgid)}
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                members.setdefault(pid, psutil.Process(pid))
        if not members:
            return
        self._signal_group(pgid, signal.SIGKILL)
        for proc in members.values():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(list(members.values()), timeout=5)
