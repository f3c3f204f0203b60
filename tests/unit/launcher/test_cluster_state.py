"""The state file of a detached cluster, and a notebook attaching to a shared one.

No process starts here: a cluster that was never started still picks its ports and can write
its state file, which is all ``attach`` and ``notebook_cluster`` read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bookstore.launcher.cluster import SHARED_CLUSTER_VARIABLE, Cluster, ClusterError, notebook_cluster

SECRET = "the-shared-clusters-own-secret"


def written(tmp_path: Path, **options: object) -> Cluster:
    cluster = Cluster(detached=True, work_dir=tmp_path, jwt_secret=SECRET, **options)  # type: ignore[arg-type]
    cluster._write_state()
    return cluster


def ports(cluster: Cluster) -> dict[str, list[tuple[int, int]]]:
    return {name: [(r.port, r.metrics_port) for r in rs] for name, rs in cluster.replicas.items()}


def test_attach_reads_back_the_metrics_ports_and_the_settings_the_processes_run_with(tmp_path: Path) -> None:
    original = written(
        tmp_path,
        telemetry=True,
        deadline_s=1.5,
        env={"BOOKSTORE_LOG_LEVEL": "DEBUG"},
        replicas={"payment": 2},
    )
    attached = Cluster.attach(tmp_path, owned=False)
    assert ports(attached) == ports(original)
    assert all(port for name, rs in ports(attached).items() if name != "gateway" for _, port in rs)
    assert attached.metrics_urls() == original.metrics_urls()
    assert (attached.telemetry, attached.deadline_s) == (True, 1.5)
    assert attached._environment(attached.replicas["payment"][1]) == original._environment(
        original.replicas["payment"][1]
    )


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    monkeypatch.setenv(SHARED_CLUSTER_VARIABLE, str(tmp_path))
    return written(tmp_path, deadline_s=2.0)


def test_a_notebook_attaches_to_the_shared_cluster_and_applies_what_is_its_own(shared: Cluster) -> None:
    cluster = notebook_cluster(startup_timeout_s=5.0, deadline_s=2.0, discovery="registry")
    assert not cluster.owned
    assert cluster.work_dir == shared.work_dir
    assert cluster.startup_timeout_s == 5.0


def test_a_notebook_asking_for_an_add_on_the_shared_cluster_lacks_is_told_which(shared: Cluster) -> None:
    with pytest.raises(ClusterError, match=r"messaging=True \(it runs without\)"):
        notebook_cluster(messaging=True)


def test_every_setting_the_shared_cluster_cannot_honour_is_named_at_once(shared: Cluster) -> None:
    with pytest.raises(ClusterError) as raised:
        notebook_cluster(deadline_s=0.5, replicas={"inventory": 2}, jwt_secret="mine", detached=False)
    message = str(raised.value)
    assert "deadline_s=0.5 (it has 2.0)" in message
    assert "replicas['inventory']=2 (it runs 1)" in message
    assert "detached=False" in message
    assert "jwt_secret" in message and SECRET not in message and "mine" not in message
