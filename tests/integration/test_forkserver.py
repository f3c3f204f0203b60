"""The zygote that forks a cluster's services: real processes, their own, and a safe fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bookstore.launcher.cluster import ALL_SERVICES, Cluster
from bookstore.platform.forkserver import ForkServer, ForkServerError
from bookstore.platform.processes import pid_alive
from bookstore.platform.service_catalog import entry


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_every_service_is_a_process_of_its_own_forked_by_one_zygote(tmp_path: Path) -> None:
    cluster = Cluster(work_dir=tmp_path).start()
    try:
        replicas = [r for name in ALL_SERVICES for r in cluster.replicas[name]]
        pids = [r.pid for r in replicas]
        assert None not in pids and len(set(pids)) == len(ALL_SERVICES)
        zygotes = {parent_of(pid) for pid in pids if pid is not None}
        assert zygotes == {cluster.forkserver_pid} and os.getpid() not in zygotes
        for replica in replicas:
            assert replica.pid is not None
            assert os.getpgid(replica.pid) == replica.pid  # its own process group, killed as one
            command = Path(f"/proc/{replica.pid}/cmdline").read_bytes().decode()
            assert f"-m {entry(replica.service).module} " in command  # ps names the service
        # Each answers on its own port with its own name: the environment it was given, not the zygote's.
        assert {s.service for s in cluster.status()} == set(ALL_SERVICES)
        assert all(s.state == "SERVING" for s in cluster.status())
    finally:
        cluster.stop()
    assert not any(pid_alive(pid) for pid in pids if pid is not None)


def test_a_zygote_with_a_thread_refuses_to_fork_and_the_cluster_starts_its_services_anyway(
    tmp_path: Path,
) -> None:
    threaded = ForkServer(
        ["tests.integration.forkserver_threaded"], dict(os.environ), tmp_path / "zygote.log"
    )
    try:
        with pytest.raises(ForkServerError, match="started-at-import"):
            threaded.spawn("bookstore.services.catalog", dict(os.environ), tmp_path / "catalog.log")
        cluster = Cluster(work_dir=tmp_path / "cluster").start(forkserver=threaded)
        try:
            assert all(s.state == "SERVING" for s in cluster.status())
            # Started the usual way: fresh interpreters, children of this process.
            pids = [r.pid for replicas in cluster.replicas.values() for r in replicas if r.pid]
            assert {parent_of(pid) for pid in pids} == {os.getpid()}
        finally:
            cluster.stop()
        assert pid_alive(threaded.pid)  # someone else's zygote: the cluster did not end it
    finally:
        threaded.close()


def test_a_service_that_fails_at_start_reports_its_exit_in_its_own_log(tmp_path: Path) -> None:
    zygote = ForkServer(["bookstore.services.catalog.__main__"], dict(os.environ), tmp_path / "zygote.log")
    try:
        log = tmp_path / "broken.log"
        pid = zygote.spawn("bookstore.no_such_module", dict(os.environ), log)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        zygote.close()  # waits for the zygote, which notes each child that has ended
    text = log.read_text()
    assert "No module named bookstore.no_such_module" in text
    assert text.splitlines()[-1] == "[forkserver] exited with code 1"


def test_fork_services_false_starts_every_service_as_a_fresh_interpreter(tmp_path: Path) -> None:
    cluster = Cluster(work_dir=tmp_path, fork_services=False).start()
    try:
        assert cluster.forkserver_pid is None
        pids = [r.pid for replicas in cluster.replicas.values() for r in replicas if r.pid]
        assert len(pids) == len(ALL_SERVICES) and {parent_of(pid) for pid in pids} == {os.getpid()}
    finally:
        cluster.stop()


def test_a_spawn_the_zygote_refuses_falls_back_and_leaves_its_other_services_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = Cluster(work_dir=tmp_path).start()
    try:
        names = [name for name in ALL_SERVICES if name != "payment"]
        others = {r.service: r.pid for name in names for r in cluster.replicas[name]}

        def refuse(self: ForkServer, module: str, env: object, log_path: Path) -> int:
            raise ForkServerError("planted: no more forks")

        monkeypatch.setattr(ForkServer, "spawn", refuse)
        cluster.restart("payment")
        payment = cluster.replicas["payment"][0]
        assert payment.pid is not None and parent_of(payment.pid) == os.getpid()  # a fresh interpreter
        # The zygote stays: closing it would have sent SIGTERM to every service it forked.
        assert cluster.forkserver_pid is not None and pid_alive(cluster.forkserver_pid)
        assert {r.service: r.pid for name in others for r in cluster.replicas[name]} == others
        assert all(s.state == "SERVING" for s in cluster.status())
    finally:
        cluster.stop()


def test_a_process_whose_main_thread_ended_is_alive_until_its_last_thread_ends() -> None:
    # How a forked service dies: its main thread reads as a zombie while the others (a gRPC
    # server's, holding its port) are still being torn down. Not gone until they are.
    script = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(1.5,)).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the main thread never ended"
            time.sleep(0.01)
        assert pid_alive(child.pid)  # main thread a zombie, its other thread still running
        while pid_alive(child.pid):
            assert time.monotonic() < deadline + 5, "the process never ended"
            time.sleep(0.01)
        assert child.poll() is not None or len(os.listdir(f"/proc/{child.pid}/task")) <= 1
    finally:
        child.kill()
        child.wait()
