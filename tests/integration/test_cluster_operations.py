"""The launcher's promises: balancing, kill and restart, scaling, faults, isolation and clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import httpx
import pytest

from bookstore.launcher.cluster import Cluster, ClusterError
from bookstore.launcher.outage import BOOKSTORE, Backoff, outage_and_return
from bookstore.platform.channels import open_channel
from bookstore.platform.processes import pid_alive
from bookstore.rpc.v1 import catalog_pb2, inventory_pb2, inventory_pb2_grpc, payment_pb2


def get_stock_calls(cluster: Cluster) -> list[int]:
    return [s.calls_by_method.get("GetStock", 0) for s in cluster.stats("inventory")]


def test_round_robin_spreads_calls_evenly_over_the_replicas(cluster: Cluster) -> None:
    channel = open_channel(cluster.target("inventory"))
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    # round_robin uses the first replica that connects at once and adds the others as their
    # connections come up: warm up until every replica has served a call.
    start = get_stock_calls(cluster)
    for _ in range(50):
        for _ in range(5):
            stub.GetStock(inventory_pb2.GetStockRequest(book_id=1), timeout=5)
        if all(a > b for a, b in zip(get_stock_calls(cluster), start, strict=True)):
            break
    before = get_stock_calls(cluster)
    for _ in range(100):
        stub.GetStock(inventory_pb2.GetStockRequest(book_id=1), timeout=5)
    channel.close()
    spread = [a - b for a, b in zip(get_stock_calls(cluster), before, strict=True)]
    assert len(spread) == 2 and sum(spread) == 100
    assert min(spread) >= 40, spread


def test_after_an_outage_a_caller_recovers_at_its_next_scheduled_attempt_not_when_the_service_is_back(
    cluster: Cluster,
) -> None:
    # Attempts at 0 and then 3 s (+-20% jitter) after the first failure: the catalog is back
    # long before the second, and the caller goes on failing until it comes.
    slow = Backoff(initial_s=3.0, max_s=3.0)
    run = outage_and_return(cluster, "catalog", down_s=0.5, backoff=slow)
    assert run.failed_calls > 0
    assert 0.5 <= run.back_at_s < run.recovered_at_s
    assert run.recovered_at_s >= 3.0 * (1 - slow.jitter), run
    assert [s.state for s in cluster.status() if s.service == "catalog"] == ["SERVING"]

    quick = outage_and_return(cluster, "catalog", down_s=0.5, backoff=BOOKSTORE)
    assert quick.failed_calls > 0 and quick.back_at_s <= quick.recovered_at_s


UNCACHED_BOOK = 61


def test_a_killed_service_gives_unavailable_then_503_and_recovers_after_restart(
    cluster: Cluster, http: httpx.Client
) -> None:
    cluster.kill("catalog")
    try:
        assert [s.state for s in cluster.status() if s.service == "catalog"] == ["DOWN"]
        with pytest.raises(grpc.RpcError) as error:
            cluster.stub("catalog").GetBook(catalog_pb2.GetBookRequest(book_id=1), timeout=2)
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        # A book no other test reads: the gateway's fallback cache holds no copy of it to serve.
        response = http.get(f"/books/{UNCACHED_BOOK}")
        assert response.status_code == 503
        assert response.headers.get("retry-after")
    finally:
        cluster.restart("catalog")
    # The gateway's channel reconnects on its backoff schedule (at most 1 s here), so poll.
    deadline = time.monotonic() + 5
    while (status := http.get(f"/books/{UNCACHED_BOOK}").status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200


def test_an_injected_fault_fails_calls_with_the_chosen_code_until_cleared(cluster: Cluster) -> None:
    payment = cluster.stub("payment")
    request = payment_pb2.GetPaymentRequest(order_id="00000000-0000-0000-0000-000000000001")
    cluster.inject_fault("payment", "GetPayment", error_rate=1.0, code="RESOURCE_EXHAUSTED", latency_ms=50)
    try:
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as error:
            payment.GetPayment(request, timeout=5)
        assert error.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.perf_counter() - started >= 0.05
    finally:
        cluster.clear_faults("payment")
    with pytest.raises(grpc.RpcError) as error:
        payment.GetPayment(request, timeout=5)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND


def test_an_injected_payment_outage_is_503_at_the_gateway(
    cluster: Cluster, http: httpx.Client, auth_headers: dict[str, str]
) -> None:
    cluster.inject_fault("payment", "Pay", error_rate=1.0)
    try:
        response = http.post("/orders", json={"items": [{"book_id": 2, "quantity": 1}]}, headers=auth_headers)
    finally:
        cluster.clear_faults("payment")
    assert response.status_code == 503, response.text


def test_scaling_adds_replicas_that_callers_then_use() -> None:
    with Cluster() as cluster:
        cluster.scale("inventory", 3)
        assert len(cluster.stats("inventory")) == 3
        stub = inventory_pb2_grpc.InventoryServiceStub(open_channel(cluster.target("inventory")))
        for _ in range(60):
            stub.GetStock(inventory_pb2.GetStockRequest(book_id=1), timeout=5)
        assert all(n > 0 for n in get_stock_calls(cluster))
        cluster.scale("inventory", 1)
        assert len(cluster.stats("inventory")) == 1
        assert all(s.state == "SERVING" for s in cluster.status())
    # A notebook's knob turned after the last cell stopped the cluster: refused, nothing spawned.
    with pytest.raises(RuntimeError, match="cluster is stopped"):
        cluster.scale("inventory", 2)
    with pytest.raises(RuntimeError, match="cluster is stopped"):
        cluster.restart("catalog")
    assert all(s.pid is None for s in cluster.status())


def test_two_clusters_run_side_by_side_and_stop_leaves_no_process() -> None:
    with Cluster() as first, Cluster() as second:
        assert first.address("catalog") != second.address("catalog")
        pids = [s.pid for c in (first, second) for s in c.status()]
        for c in (first, second):
            assert (
                c.stub("catalog").GetBook(catalog_pb2.GetBookRequest(book_id=1), timeout=5).book.book_id == 1
            )
    time.sleep(0.1)
    assert [pid for pid in pids if pid is not None and pid_alive(pid)] == []


def test_a_service_that_cannot_start_stops_the_rest_and_shows_its_log() -> None:
    cluster = Cluster(
        env={"BOOKSTORE_DB_URL": "mysql+pymysql://nobody@127.0.0.1:1/none_{service}"}, startup_timeout_s=20
    )
    with pytest.raises(ClusterError) as error:
        cluster.start()
    assert "log" in str(error.value)
    assert all(s.state == "DOWN" for s in cluster.status())


def test_services_die_with_the_process_that_started_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = textwrap.dedent(
        """
        import sys, time
        from bookstore.launcher.cluster import Cluster
        cluster = Cluster().start()
        print(" ".join(str(s.pid) for s in cluster.status()), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) == 6, line
        os.kill(parent.pid, signal.SIGKILL)  # no atexit handler runs: only PR_SET_PDEATHSIG can help
        parent.wait(timeout=5)
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in pids if pid_alive(p)] == []
    finally:
        if parent.poll() is None:
            parent.kill()


def test_sigterm_shuts_every_service_down_gracefully_with_exit_code_zero(tmp_path: Path) -> None:
    cluster = Cluster(work_dir=tmp_path).start()  # a work dir of our own: it outlives stop()
    logs = {name: r.log_path for name in cluster.replicas for r in cluster.replicas[name]}
    cluster.stop()
    # The services are the zygote's children (bookstore.platform.forkserver): it notes each exit in its log.
    endings = {name: path.read_text().splitlines()[-1] for name, path in logs.items()}
    assert endings == dict.fromkeys(logs, "[forkserver] exited with code 0")


def test_the_cli_starts_a_detached_cluster_reports_it_and_stops_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    work_dir = str(tmp_path / "cluster")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bookstore.cli", *args, "--work-dir", work_dir],
            capture_output=True,
            text=True,
            timeout=60,
        )

    up = cli("up", "--replicas", "inventory=2")
    try:
        assert up.returncode == 0, up.stderr
        assert "gateway" in up.stdout
        status = cli("status")
        assert status.stdout.count("SERVING") == 7, status.stdout
        assert cli("up").returncode == 1  # one cluster per work dir
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert cli("status").returncode == 1


def test_attach_finds_every_port_of_a_running_detached_cluster_with_telemetry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Telemetry gives each gRPC process a /metrics port and the cluster a trace store: the
    # ports an attached cluster used to lose.
    cluster = Cluster(detached=True, work_dir=tmp_path / "cluster", telemetry=True).start()
    try:
        attached = Cluster.attach(cluster.work_dir, owned=False)
        assert attached.metrics_urls() == cluster.metrics_urls()
        assert len(attached.metrics_urls()) == 6
        for url in attached.metrics_urls():
            with urllib.request.urlopen(url, timeout=5) as page:
                assert b"# TYPE" in page.read(), url
        assert (attached.otlp_endpoint, attached.trace_backend) == (
            cluster.otlp_endpoint,
            cluster.trace_backend,
        )
        assert isinstance(attached.traces.traces(service="catalog"), list)  # its query port answers
        attached.stop()  # not its own: closes its channels and nothing else
        assert {s.state for s in cluster.status()} == {"SERVING"}
    finally:
        cluster.stop()


def test_a_service_restarted_from_a_short_lived_thread_outlives_that_thread() -> None:
    # PR_SET_PDEATHSIG follows the creating thread; the launcher starts children from one
    # long-lived thread so that a restart from a worker thread does not doom the service.
    with Cluster() as cluster:
        worker = threading.Thread(target=cluster.restart, args=("payment",))
        worker.start()
        worker.join()
        time.sleep(0.5)  # a doomed child would receive SIGTERM as soon as the thread ended
        assert [s.state for s in cluster.status() if s.service == "payment"] == ["SERVING"]


def test_a_cluster_whose_broker_never_answered_stops_without_a_warning_about_its_topology(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import pika.exceptions

    cluster = Cluster(messaging=True, rabbitmq_url="amqp://guest:guest@127.0.0.1:1/%2F")
    with caplog.at_level("WARNING"), pytest.raises(pika.exceptions.AMQPConnectionError):
        cluster.start()
    assert not [r for r in caplog.records if "topology" in r.getMessage()], caplog.text
