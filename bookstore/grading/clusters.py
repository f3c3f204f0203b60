"""Bookstore clusters for a grading batch: one per worker slot, reset before each submission.

A week whose checks need live services (``NEEDS_CLUSTER = True``) used to share one cluster
across the batch, so one student's ``inject_fault`` cost the next student points. Starting a
cluster per submission would add its start-up (1.5-3 s, six processes) to every notebook.
The middle way, and a real guarantee for what the checks depend on:

* one cluster per worker slot, so two submissions graded at the same time never share one;
* before each submission borrows it, the cluster is *reset*: every replica that is down is
  started again and every injected fault is cleared, on every service;
* the submission's kernel and its checks see only the cluster it borrowed
  (``BOOKSTORE_SHARED_CLUSTER_DIR`` names that cluster's directory).

What stays shared: data written through the services (orders, stock, users) carries over
from one submission to the next on the same slot (the week 6 checks read only the catalogue,
which no RPC changes); and the loopback network, so a kernel that scans ports can still reach
the other slot's cluster while it is in use.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bookstore.platform.cluster import Cluster


class ClusterPool:
    """``size`` detached clusters under ``root``; :meth:`borrow` one, reset, for a submission."""

    def __init__(self, root: Path, size: int) -> None:
        from bookstore.platform.cluster import Cluster

        self.clusters: list[Cluster] = []
        self._free: queue.SimpleQueue[Cluster] = queue.SimpleQueue()
        try:
            for slot in range(size):
                cluster = Cluster(detached=True, work_dir=root / f"cluster-{slot}").start()
                self.clusters.append(cluster)
                self._free.put(cluster)
        except BaseException:
            self.stop()
            raise

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Cluster]:
        cluster = self._free.get()
        try:
            reset(cluster)
            yield cluster
        finally:
            self._free.put(cluster)

    def stop(self) -> None:
        for cluster in self.clusters:
            with contextlib.suppress(Exception):
                cluster.stop()


def reset(cluster: Cluster) -> None:
    """Undo what a submission may have done to a cluster's processes: restart, clear faults."""
    for name, replicas in cluster.replicas.items():
        for replica in replicas:
            if not replica.running():
                cluster.restart(name, replica.index)
    cluster.clear_faults()
