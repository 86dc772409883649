"""PID-file process management: failed starts explain themselves, stale PID files do not confuse anyone."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest

from local_stack.errors import StackError
from local_stack.processes import ServiceProcess, free_ports, port_in_use


def _service(tmp_path, name="svc") -> ServiceProcess:
    return ServiceProcess(name, tmp_path / "run" / f"{name}.pid", tmp_path / "logs" / f"{name}.log", stop_timeout=3)


def test_missing_binary_names_the_service(tmp_path):
    svc = _service(tmp_path, "s3")
    with pytest.raises(StackError, match=r"^s3: cannot run /nonexistent/weed .*make venv"):
        svc.start(["/nonexistent/weed", "server"], env={})
    assert svc.running_pid() is None


def test_failed_start_shows_the_log_tail(tmp_path):
    svc = _service(tmp_path, "postgres")
    svc.start(["sh", "-c", "echo 'FATAL: could not create lock file'; exit 3"], env={})
    with pytest.raises(StackError) as info:
        svc.wait_until(lambda: False, timeout=10, what="accepting connections")
    message = str(info.value)
    assert message.startswith("postgres exited during start-up")
    assert "FATAL: could not create lock file" in message
    assert not svc.pid_file.exists()


def test_stop_ends_the_whole_tree_and_reports_it(tmp_path):
    svc = _service(tmp_path)
    # A parent that ignores SIGTERM's default and a child that lives on: both must be gone after stop().
    pid = svc.start(
        [sys.executable, "-c", "import subprocess,time; subprocess.Popen(['sleep','60']); time.sleep(60)"], {}
    )
    child_pids = []
    for _ in range(50):
        child_pids = [c.pid for c in psutil.Process(pid).children(recursive=True)]
        if child_pids:
            break
        psutil.wait_procs([], timeout=0.1)
    assert child_pids
    assert svc.stop() is True
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in [pid, *child_pids]
    )
    assert not svc.pid_file.exists()
    assert svc.stop() is False


def test_stale_pid_file_after_a_crash_is_cleared(tmp_path):
    svc = _service(tmp_path)
    dead = subprocess.Popen(["true"])
    started = psutil.Process(dead.pid).create_time()
    dead.wait()
    svc.pid_file.parent.mkdir(parents=True)
    svc.pid_file.write_text(json.dumps({"pid": dead.pid, "started": started}))
    assert svc.running_pid() is None
    assert not svc.pid_file.exists()


def test_pid_reused_by_another_program_is_not_ours(tmp_path):
    svc = _service(tmp_path)
    svc.pid_file.parent.mkdir(parents=True)
    # Our own PID with a different start time: a live process, but not the one this file recorded.
    svc.pid_file.write_text(json.dumps({"pid": psutil.Process().pid, "started": 12345.0}))
    assert svc.running_pid() is None
    assert psutil.Process().is_running()


def test_port_probe_sees_a_listener():
    (port,) = free_ports(1)
    assert not port_in_use("127.0.0.1", port)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_in_use("127.0.0.1", port)


def test_inspecting_a_stale_pid_file_changes_nothing(tmp_path):
    """`status` reads through inspect(): the file stays for `up` to clean, and nothing is signalled."""
    svc = _service(tmp_path)
    dead = subprocess.Popen(["true"])
    started = psutil.Process(dead.pid).create_time()
    dead.wait()
    svc.pid_file.parent.mkdir(parents=True)
    svc.pid_file.write_text(json.dumps({"pid": dead.pid, "started": started}))
    state = svc.inspect()
    assert state.stale and state.pid is None and state.recorded_pid == dead.pid
    assert svc.pid_file.exists()


def _start_tree(svc: ServiceProcess) -> list[psutil.Process]:
    """A leader and a child, as MLflow's CLI and its uvicorn workers."""
    pid = svc.start(
        [sys.executable, "-c", "import subprocess,time; subprocess.Popen(['sleep','60']); time.sleep(60)"], {}
    )
    for _ in range(50):
        children = psutil.Process(pid).children(recursive=True)
        if children:
            return [psutil.Process(pid), *children]
        psutil.wait_procs([], timeout=0.1)
    raise AssertionError("the child never started")


@pytest.mark.parametrize("damage", ["garbage{", "", '{"pid": "x"}', None])
def test_a_damaged_or_lost_pid_file_is_reported_and_stop_still_ends_the_tree(tmp_path, damage):
    svc = _service(tmp_path)
    tree = _start_tree(svc)
    if damage is None:
        svc.pid_file.unlink()
    else:
        svc.pid_file.write_text(damage)
    state = svc.inspect()
    assert state.pid == tree[0].pid and state.damaged == (damage is not None)
    assert svc.stop() is True
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive and not svc.pid_file.exists()


def test_orphans_of_a_dead_leader_are_found_without_their_pid_file(tmp_path):
    svc = _service(tmp_path)
    leader, *children = _start_tree(svc)
    leader.kill()
    leader.wait(5)
    svc.pid_file.write_text("garbage{")
    state = svc.inspect()
    assert state.pid is None and state.damaged and set(state.orphans) == {c.pid for c in children}
    assert svc.stop() is True
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


def test_pid_files_are_replaced_atomically(tmp_path, monkeypatch):
    """A failed write (here a full disk at fsync) leaves the previous file whole and no temporary file behind."""
    import errno
    import os

    from local_stack.files import write_atomically

    target = tmp_path / "svc.pid"
    write_atomically(target, '{"pid": 1, "started": 2.0}')

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, '{"pid": 3, "started": 4.0}')
    assert json.loads(target.read_text()) == {"pid": 1, "started": 2.0}
    assert [p.name for p in tmp_path.iterdir()] == ["svc.pid"]
