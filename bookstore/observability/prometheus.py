"""Prometheus: a real one when a ``prometheus`` binary is installed, a direct scrape when not.

**What.** Prometheus *pulls*: every ``scrape_interval`` it fetches each target's ``/metrics``,
stamps the samples with the time and the target's ``job`` and ``instance`` labels, and
stores them as time series. PromQL then computes over those series, for example the 99th
percentile latency of each method over the last minute::

    histogram_quantile(0.99, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket[1m])))

``start_prometheus(targets, work_dir)`` runs the ``prometheus`` binary on a free port with a
configuration derived from ``infra/prometheus.yml`` (same job names, the real loopback
addresses, a 1 s scrape interval so a notebook sees data within seconds) and its own
storage directory. ``query`` and ``query_range`` call its HTTP API.

**Without Prometheus.** ``scrape(url)`` reads one ``/metrics`` page into samples, and
``histogram_quantile`` computes a quantile from two scrapes' bucket counters the way
Prometheus does (the increase of each bucket between them, then linear interpolation
inside the bucket holding the quantile), so a notebook draws the same plots either way.

**When not to.** A 1 s scrape interval suits a five-minute lab, not production (15-60 s is
usual): every scrape costs the target a rendering of all its series. And a quantile from a
histogram is an estimate, as good as its buckets are fine where the values fall.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

INFRA_CONFIG = Path(__file__).resolve().parents[2] / "infra" / "prometheus.yml"
DEFAULT_SCRAPE_INTERVAL_S = 1.0
READY_TIMEOUT_S = 30.0


class PrometheusUnavailable(RuntimeError):
    """No ``prometheus`` binary to run (install it, or fall back to ``scrape``)."""


class PrometheusQueryError(RuntimeError):
    """Prometheus refused a query (bad PromQL) or could not be reached."""


@dataclass(frozen=True)
class Sample:
    """One value of a series: a scraped sample, or one element of an instant query's vector."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and its ``(unix time, value)`` points."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)


def prometheus_binary() -> str | None:
    """The path of a ``prometheus`` binary on PATH, if there is one."""
    return shutil.which("prometheus")


# ----------------------------------------------------------------------------- configuration


def prometheus_config(
    targets: Mapping[str, Sequence[str]],
    *,
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
    template: Path | None = INFRA_CONFIG,
    targets_dir: Path | None = None,
) -> dict[str, Any]:
    """A Prometheus configuration scraping ``targets`` (job -> ``host:port`` list) every interval.

    Each job keeps the ``metrics_path`` the template gives it (``infra/prometheus.yml``);
    jobs the template does not know scrape ``/metrics``.

    With ``targets_dir``, each job's addresses are not written into the configuration but
    read from ``targets_dir/<job>.json`` (Prometheus's file-based service discovery), which
    ``write_target_files`` keeps up to date: Prometheus watches those files, so a replica
    added or removed later is scraped or dropped within a few seconds, without a restart.
    This is the smallest real form of service discovery; Consul (``consul_sd_configs``) and
    Kubernetes (``kubernetes_sd_configs``) answer the same question from a registry instead.
    """
    import yaml

    paths: dict[str, str] = {}
    if template is not None and template.exists():
        loaded = yaml.safe_load(template.read_text()) or {}
        for job in loaded.get("scrape_configs", ()):
            paths[job["job_name"]] = job.get("metrics_path", "/metrics")
    interval = _duration(scrape_interval_s)
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": _duration(min(scrape_interval_s, 10.0) * 0.8),
            "evaluation_interval": interval,
        },
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": paths.get(job, "/metrics"),
                **_where_targets_come_from(job, addresses, targets_dir),
            }
            for job, addresses in targets.items()
            if addresses or targets_dir is not None
        ],
    }


def _where_targets_come_from(job: str, addresses: Sequence[str], targets_dir: Path | None) -> dict[str, Any]:
    """A job's static list, or the file that discovery reads it from."""
    if targets_dir is None:
        return {"static_configs": [{"targets": list(addresses)}]}
    return {"file_sd_configs": [{"files": [str(target_file(targets_dir, job))], "refresh_interval": "5s"}]}


def target_file(targets_dir: Path, job: str) -> Path:
    """Where file-based discovery reads ``job``'s addresses."""
    return targets_dir / f"{job}.json"


def write_target_files(targets: Mapping[str, Sequence[str]], targets_dir: Path) -> None:
    """Write each job's addresses where ``prometheus_config(targets_dir=...)`` points Prometheus.

    Each file is replaced whole (written aside, then renamed), so Prometheus never reads half
    a list; the 5 s refresh is only the fallback to its file watch.
    """
    targets_dir.mkdir(parents=True, exist_ok=True)
    for job, addresses in targets.items():
        final = target_file(targets_dir, job)
        aside = final.with_suffix(".json.new")
        aside.write_text(json.dumps([{"targets": list(addresses)}]))
        os.replace(aside, final)


def write_prometheus_config(
    targets: Mapping[str, Sequence[str]],
    path: str | Path,
    *,
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
    targets_dir: Path | None = None,
) -> Path:
    """Write ``prometheus_config(targets)`` as YAML to ``path`` (for a binary or a container); the path."""
    import yaml

    written = Path(path)
    written.parent.mkdir(parents=True, exist_ok=True)
    config = prometheus_config(targets, scrape_interval_s=scrape_interval_s, targets_dir=targets_dir)
    written.write_text(yaml.safe_dump(config))
    return written


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


# ----------------------------------------------------------------------------- the server


class PrometheusServer:
    """A running ``prometheus`` process: its URL, and a ``stop()`` that ends it."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, work_dir: Path, config_path: Path) -> None:
        self.process = process
        self.url = url
        self.work_dir = work_dir
        self.config_path = config_path

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        return query(self.url, promql, at)

    def query_range(self, promql: str, start: float, end: float, step_s: float = 1.0) -> list[Series]:
        return query_range(self.url, promql, start, end, step_s)

    def wait_for_targets(
        self, jobs: Iterable[str] | None = None, timeout_s: float = 30.0
    ) -> dict[str, float]:
        return wait_for_targets(self.url, jobs, timeout_s)

    @property
    def targets_dir(self) -> Path:
        return self.work_dir / "targets"

    def update_targets(self, targets: Mapping[str, Sequence[str]]) -> None:
        """Scrape these addresses from now on (file-based discovery: no restart, no reload)."""
        write_target_files(targets, self.targets_dir)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_prometheus(
    targets: Mapping[str, Sequence[str]],
    work_dir: str | Path,
    *,
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
    port: int = 0,
    binary: str | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> PrometheusServer:
    """Run Prometheus scraping ``targets`` (job -> addresses); returns once it answers ``/-/ready``.

    Raises ``PrometheusUnavailable`` when there is no binary. Its configuration, data and
    log go under ``work_dir/prometheus``; ``stop()`` ends it (the caller owns it).
    """

    from bookstore.platform.processes import free_port, spawn

    executable = binary or prometheus_binary()
    if executable is None:
        raise PrometheusUnavailable(
            "no `prometheus` binary on PATH (Debian: apt-get install -y --no-install-recommends prometheus)"
        )
    home = Path(work_dir) / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    write_target_files(targets, home / "targets")  # PrometheusServer.targets_dir
    config_path = write_prometheus_config(
        targets, home / "prometheus.yml", scrape_interval_s=scrape_interval_s, targets_dir=home / "targets"
    )
    port = port or free_port()
    # Through the launcher's spawner: Prometheus, too, dies with the kernel that started it.
    process = spawn(
        "",
        dict(os.environ),
        home / "prometheus.log",
        command=[
            executable,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ],
    )
    server = PrometheusServer(process, f"http://127.0.0.1:{port}", home, config_path)
    try:
        _wait_ready(server, ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: PrometheusServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            log = (server.work_dir / "prometheus.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"prometheus exited with status {server.process.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"prometheus at {server.url} not ready after {timeout_s:g} s")
        time.sleep(0.1)


# ----------------------------------------------------------------------------- the HTTP API


def _api(url: str, path: str, params: Mapping[str, Any], timeout_s: float = 10.0) -> Any:
    address = f"{url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(address, timeout=timeout_s) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read()).get("error", "")
        except ValueError:
            detail = ""
        raise PrometheusQueryError(f"{error.code} from {path}: {detail or error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise PrometheusQueryError(f"Prometheus at {url} did not answer: {error}") from None
    if body.get("status") != "success":
        raise PrometheusQueryError(f"{path}: {body.get('error', body)}")
    return body["data"]


def query(url: str, promql: str, at: float | None = None) -> list[Sample]:
    """An instant query: one sample per series (a scalar comes back as one unlabelled sample)."""
    params: dict[str, Any] = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    data = _api(url, "/api/v1/query", params)
    if data["resultType"] in ("scalar", "string"):
        return [Sample("", {}, float(data["result"][1]))]
    return [
        Sample(item["metric"].get("__name__", ""), dict(item["metric"]), float(item["value"][1]))
        for item in data["result"]
    ]


def query_range(url: str, promql: str, start: float, end: float, step_s: float = 1.0) -> list[Series]:
    """A range query from ``start`` to ``end`` (unix seconds), one point per ``step_s``."""
    data = _api(
        url,
        "/api/v1/query_range",
        {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step_s},
    )
    return [
        Series(dict(item["metric"]), [(float(t), float(v)) for t, v in item["values"]])
        for item in data["result"]
    ]


def target_health(url: str) -> dict[str, float]:
    """``up`` of every scraped target, by ``job/instance``: 1.0 when its last scrape worked."""
    return {f"{s.labels.get('job')}/{s.labels.get('instance')}": s.value for s in query(url, "up")}


def wait_for_targets(
    url: str, jobs: Iterable[str] | None = None, timeout_s: float = 30.0
) -> dict[str, float]:
    """Poll until every target (of ``jobs``, if given) has ``up == 1``; returns ``target_health``.

    Prometheus scrapes a few seconds after it starts, so the first queries find nothing.
    """
    wanted = set(jobs) if jobs is not None else None
    deadline = time.monotonic() + timeout_s
    while True:
        health = target_health(url)
        seen = {key.split("/", 1)[0] for key in health}
        relevant = {key: up for key, up in health.items() if wanted is None or key.split("/", 1)[0] in wanted}
        complete = wanted is None or wanted <= seen
        if health and complete and all(up == 1.0 for up in relevant.values()):
            return health
        if time.monotonic() > deadline:
            raise TimeoutError(f"targets not all up after {timeout_s:g} s: {health} (wanted jobs {wanted})")
        time.sleep(0.25)


# ----------------------------------------------------------------------------- direct scrape


def scrape(url: str, timeout_s: float = 5.0) -> list[Sample]:
    """Every sample on a ``/metrics`` page (``http://host:port`` or the full URL)."""
    address = url if url.rstrip("/").endswith("/metrics") else f"{url.rstrip('/')}/metrics"
    with urllib.request.urlopen(address, timeout=timeout_s) as response:
        text = response.read().decode("utf-8")
    return parse_samples(text)


def parse_samples(text: str) -> list[Sample]:
    return [
        Sample(sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def metric_types(text: str) -> dict[str, str]:
    """``family name -> type`` of a ``/metrics`` page (a counter's family drops ``_total``)."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def histogram_quantile(
    q: float,
    after: Sequence[Sample],
    before: Sequence[Sample] = (),
    *,
    metric: str,
    match: Mapping[str, str] | None = None,
) -> float:
    """The ``q`` quantile of histogram ``metric`` between two scrapes, as PromQL would estimate it.

    ``metric`` is the histogram's name (``grpc_server_handling_seconds``); ``match`` keeps
    only series with those label values; the buckets of all other label values are summed
    (PromQL's ``sum by (le)``). Without ``before``, everything since the process started.
    NaN when no observation fell between the scrapes.
    """
    buckets = _bucket_counts(after, metric, match)
    for le, count in _bucket_counts(before, metric, match).items():
        buckets[le] = buckets.get(le, 0.0) - count
    return bucket_quantile(q, sorted(buckets.items()))


def _bucket_counts(
    samples: Iterable[Sample], metric: str, match: Mapping[str, str] | None
) -> dict[float, float]:
    counts: dict[float, float] = {}
    for sample in samples:
        if sample.name != f"{metric}_bucket":
            continue
        if match and any(sample.labels.get(k) != v for k, v in match.items()):
            continue
        le = float(sample.labels["le"])
        counts[le] = counts.get(le, 0.0) + sample.value
    return counts


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus's ``histogram_quantile`` over cumulative ``(upper bound, count)`` pairs, ``+Inf`` last.

    The quantile's rank is found in the first bucket whose count reaches it, and assumed
    to lie linearly between that bucket's lower and upper bound. In the ``+Inf`` bucket it
    is the highest finite bound: a histogram cannot say more.
    """
    if not buckets or not 0.0 <= q <= 1.0:
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in buckets:
        if count >= rank:
            if math.isinf(upper_bound):
                return lower_bound
            if count == lower_count:
                return upper_bound
            return lower_bound + (upper_bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper_bound, count
    return buckets[-1][0]


class ScrapeHistory:
    """Scrapes of one or more ``/metrics`` pages over time: PromQL's ``rate`` and quantiles, by hand.

    Call ``record()`` every second or so while a load runs; then ``rate_series`` and
    ``quantile_series`` give ``(unix time, value)`` points over a sliding window, the same
    series ``query_range`` would give from Prometheus (for the samples of every target summed).
    """

    def __init__(self, urls: Iterable[str]) -> None:
        self.urls = list(urls)
        self.scrapes: list[tuple[float, list[Sample]]] = []

    def record(self, at: float | None = None) -> None:
        samples = [sample for url in self.urls for sample in scrape(url)]
        self.scrapes.append((time.time() if at is None else at, samples))

    def _pairs(self, window_s: float) -> Iterable[tuple[float, list[Sample], float, list[Sample]]]:
        for index, (now, after) in enumerate(self.scrapes):
            earlier = [(t, s) for t, s in self.scrapes[:index] if now - t >= window_s]
            if earlier:
                then, before = earlier[-1]
                yield now, after, then, before

    def rate_series(
        self, name: str, match: Mapping[str, str] | None = None, window_s: float = 5.0
    ) -> list[tuple[float, float]]:
        """Per-second increase of counter sample ``name`` (e.g. ``http_requests_total``), summed."""

        def total(samples: list[Sample]) -> float:
            return sum(
                s.value
                for s in samples
                if s.name == name and not (match and any(s.labels.get(k) != v for k, v in match.items()))
            )

        return [
            (now, max(total(after) - total(before), 0.0) / (now - then))
            for now, after, then, before in self._pairs(window_s)
        ]

    def quantile_series(
        self, q: float, metric: str, match: Mapping[str, str] | None = None, window_s: float = 5.0
    ) -> list[tuple[float, float]]:
        """The ``q`` quantile of histogram ``metric`` over each sliding window (NaN where it saw nothing)."""
        return [
            (now, histogram_quantile(q, after, before, metric=metric, match=match))
            for now, after, _then, before in self._pairs(window_s)
        ]
