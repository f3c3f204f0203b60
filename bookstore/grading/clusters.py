"""Bookstore clusters for a grading batch: one per worker slot, reset before each submission.

A week whose checks need live services (``NEEDS_CLUSTER = True``) used to share one cluster
across the batch, so one student's ``inject_fault`` cost the next student points. Starting a
cluster per submission would add its start-up (about 2 s, six processes) to every notebook.
The middle way, and a real guarantee for what the checks depend on:

* one cluster per worker slot, so two submissions graded at the same time never share one;
  every one starts in the background, so the first submission's kernel starts while the
  first cluster does (its worker waits for the cluster before the first cell runs), and the
  other slots' clusters start while the first submissions are graded;
* before each submission borrows it, the cluster is *reset*: every replica that is down is
  started again and every injected fault is cleared, on every service;
* the submission's kernel and its checks see only the cluster it borrowed
  (``BOOKSTORE_SHARED_CLUSTER_DIR`` names that cluster's directory);
* one zygote (``bookstore.platform.forkserver``) forks the services of every cluster in the
  batch, so the second cluster costs its forks, not another six interpreters' imports: on the
  2-core course machines that start competes for the CPU with the first notebooks.

What stays shared: data written through the services (orders, stock, users) carries over
from one submission to the next on the same slot (the week 6 checks read only the catalogue,
which no RPC changes); and the loopback network, so a kernel that scans ports can still reach
the other slot's cluster while it is in use.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bookstore.launcher.cluster import Cluster
    from bookstore.platform.forkserver import ForkServer


class ClusterPool:
    """``size`` detached clusters under ``root``; :meth:`borrow` one, reset, for a submission.

    Nothing starts in the caller's thread: the first cluster is lent out while it starts (a
    worker waits for its state file, ``bookstore.grading.worker``), and :meth:`wait_first`
    tells the batch whether it came up, so a batch whose services cannot start still fails
    early. A later cluster that fails to start leaves the batch with fewer clusters, which is
    slower, not wrong: a worker waits in :meth:`borrow` for a free one.
    """

    def __init__(self, root: Path, size: int) -> None:
        self.clusters: list[Cluster] = []
        self.failures: list[str] = []
        self._free: queue.SimpleQueue[Cluster] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = False
        self._up: set[int] = set()  # id() of the clusters whose start has finished
        self._first_done = threading.Event()
        self._first_error: BaseException | None = None
        # One zygote forks every cluster's services (bookstore.platform.forkserver): the
        # libraries are imported once per batch, not six times per cluster.
        self._root = root
        self._zygote_lock = threading.Lock()
        self._zygote: ForkServer | None = None
        self._zygote_tried = False
        first = self._new(root, 0)
        self._free.put(first)
        self._starters = [threading.Thread(target=self._start_first, args=(first,), daemon=True)]
        self._starters += [
            threading.Thread(target=self._start_later, args=(root, slot), daemon=True)
            for slot in range(1, size)
        ]
        for starter in self._starters:
            starter.start()

    def wait_first(self) -> None:
        """Wait until the first cluster is up; raise what stopped it if it could not start."""
        self._first_done.wait()
        if self._first_error is not None:
            raise self._first_error

    def _new(self, root: Path, slot: int) -> Cluster:
        from bookstore.launcher.cluster import Cluster

        cluster = Cluster(detached=True, work_dir=root / f"cluster-{slot}")
        with self._lock:
            self.clusters.append(cluster)
        return cluster

    def _forkserver(self) -> ForkServer | None:
        """The batch's zygote, started by whichever cluster needs it first; None if it cannot start."""
        from bookstore.launcher.cluster import ALL_SERVICES, start_forkserver

        with self._zygote_lock:
            if not self._zygote_tried:
                self._zygote_tried = True
                self._zygote = start_forkserver(ALL_SERVICES, self._root, detached=True)
            return self._zygote

    def _start_first(self, cluster: Cluster) -> None:
        try:
            cluster.start(forkserver=self._forkserver())  # a start that fails stops what it started
        except BaseException as error:
            self._first_error = error
        else:
            with self._lock:
                self._up.add(id(cluster))
        finally:
            self._first_done.set()

    def _start_later(self, root: Path, slot: int) -> None:
        try:
            cluster = self._new(root, slot).start(forkserver=self._forkserver())
        except Exception as error:
            self.failures.append(f"cluster {slot}: {error}")
            return
        with self._lock:
            self._up.add(id(cluster))
            if not self._stopping:
                self._free.put(cluster)

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Cluster]:
        cluster = self._free.get()
        try:
            with self._lock:
                up = id(cluster) in self._up
            if up:  # one still starting is fresh: no learner code has reached it yet
                reset(cluster)
            yield cluster
        finally:
            self._free.put(cluster)

    def stop(self) -> None:
        """Stop every cluster, in parallel (each waits up to 5 s for its processes to exit)."""
        with self._lock:
            self._stopping = True
        for starter in self._starters:
            starter.join()
        stoppers = [threading.Thread(target=_stop_quietly, args=(c,)) for c in self.clusters]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        if self._zygote is not None:
            self._zygote.close()


def _stop_quietly(cluster: Cluster) -> None:
    """Kill the cluster's processes, then let ``stop`` reap them and tidy up.

    A grading cluster keeps nothing worth a graceful stop: its databases live in the batch's
    temporary folder, which goes with it. Killing first skips each service's goodbye (gRPC's
    grace period, the interpreter's shutdown), about a second at the end of every batch.
    """
    from bookstore.platform.processes import signal_group

    for replicas in cluster.replicas.values():
        for replica in replicas:
            if replica.pid is not None:
                signal_group(replica.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        cluster.stop()


def reset(cluster: Cluster) -> None:
    """Undo what a submission may have done to a cluster's processes: restart, clear faults."""
    for name, replicas in cluster.replicas.items():
        for replica in replicas:
            if not replica.running():
                cluster.restart(name, replica.index)
    cluster.clear_faults()
