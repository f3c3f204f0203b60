"""Judging the environment: from observed facts to findings a learner can act on.

These tests feed the pure half of ``bookstore.environment`` with facts as the probe
would gather them (a broker that answers or not, a Docker engine with or without images) and
check what the learner is told. The probe itself runs against real conditions in
``tests/integration/test_environment_probe.py``.
"""

from __future__ import annotations

import re

import pytest

from bookstore.environment import (
    ALL_WEEKS,
    MESSAGING_WEEKS,
    PORTS_WANTED,
    REAPER_IMAGE_DEFAULT,
    CpuFacts,
    DockerFacts,
    Finding,
    Level,
    PortFacts,
    cpu_finding,
    database_finding,
    docker_finding,
    format_text,
    html_table,
    ports_finding,
    profiler_finding,
    prometheus_finding,
    rabbitmq_finding,
    redacted,
    summary,
    trace_store_finding,
    weeks_text,
)
from bookstore.platform.containers import JAEGER_IMAGE, PROMETHEUS_IMAGE, RABBITMQ_IMAGE

NO_DOCKER = DockerFacts("no Docker engine answers: connection refused")
EMPTY_ENGINE = DockerFacts(None)
FULL_ENGINE = DockerFacts(
    None, frozenset({RABBITMQ_IMAGE, JAEGER_IMAGE, PROMETHEUS_IMAGE, REAPER_IMAGE_DEFAULT})
)


@pytest.mark.parametrize(
    ("weeks", "text"),
    [
        ((9, 10), "weeks 9-10"),
        ((10,), "week 10"),
        ((6, 9), "weeks 6, 9"),
        ((), "none"),
        ((10, 9, 9), "weeks 9-10"),
    ],
)
def test_weeks_read_as_a_range_when_they_follow_each_other(weeks: tuple[int, ...], text: str) -> None:
    assert weeks_text(weeks) == text


def test_a_password_never_reaches_a_finding() -> None:
    assert redacted("amqp://guest:secret@broker:5672/%2F") == "amqp://guest:***@broker:5672/%2F"
    assert redacted("amqp://broker:5672/") == "amqp://broker:5672/"
    finding = rabbitmq_finding("amqp://guest:secret@127.0.0.1:1/%2F", False, True, NO_DOCKER)
    assert "secret" not in format_text([finding])


# ---------------------------------------------------------------------------- RabbitMQ
def test_a_broker_on_loopback_is_ok_for_weeks_9_and_10() -> None:
    finding = rabbitmq_finding("", False, True, NO_DOCKER)
    assert (finding.level, finding.weeks) == (Level.OK, MESSAGING_WEEKS)
    assert "127.0.0.1:5672" in finding.state


def test_a_configured_broker_that_does_not_answer_is_missing_even_when_one_runs_locally() -> None:
    # the URL wins in the launcher's resolution: the local broker would not be tried
    finding = rabbitmq_finding("amqp://guest:guest@127.0.0.1:1/%2F", False, True, FULL_ENGINE)
    assert finding.level is Level.MISSING
    assert "unreachable" in finding.state and "127.0.0.1:1" in finding.state
    assert "unset BOOKSTORE_RABBITMQ_URL" in finding.remedy and "rabbitmq-server -detached" in finding.remedy


def test_no_broker_and_no_docker_names_every_way_to_get_one() -> None:
    finding = rabbitmq_finding("", False, False, NO_DOCKER)
    assert finding.level is Level.MISSING
    assert "first cell" in finding.effect
    for way in ("rabbitmq-server -detached", "apt-get install", "BOOKSTORE_RABBITMQ_URL", "Docker"):
        assert way in finding.remedy


def test_an_engine_holding_the_rabbitmq_image_provides_the_broker_as_a_container() -> None:
    finding = rabbitmq_finding("", False, False, FULL_ENGINE)
    assert finding.level is Level.DIFFERS
    assert "container" in finding.effect


def test_an_engine_without_the_image_or_its_reaper_cannot_be_counted_on() -> None:
    image_only = DockerFacts(None, frozenset({RABBITMQ_IMAGE}))
    finding = rabbitmq_finding("", False, False, image_only)
    assert finding.level is Level.MISSING
    assert REAPER_IMAGE_DEFAULT in finding.state and RABBITMQ_IMAGE not in finding.state
    reaper_off = DockerFacts(None, frozenset({RABBITMQ_IMAGE}), reaper_disabled=True)
    assert rabbitmq_finding("", False, False, reaper_off).level is Level.DIFFERS


# ---------------------------------------------------------------------------- databases
def test_mariadb_is_optional_because_sqlite_is_the_default() -> None:
    for local_reason in (None, "no MySQL/MariaDB server answers"):
        finding = database_finding("", None, local_reason)
        assert (finding.level, finding.weeks) == (Level.OK, ())
        assert "SQLite" in finding.state


def test_a_configured_database_server_that_does_not_answer_stops_every_week() -> None:
    finding = database_finding("mysql+pymysql://root:pw@127.0.0.1:1/x_{service}", "refused", None)
    assert (finding.level, finding.weeks) == (Level.MISSING, ALL_WEEKS)
    assert "pw" not in finding.state and "unset BOOKSTORE_DB_URL" in finding.remedy


def test_a_configured_sqlite_url_is_the_default_kind_of_database() -> None:
    assert database_finding("sqlite:///x_{service}.db", None, "down").level is Level.OK


# ---------------------------------------------------------------------------- week 10's pieces
def test_without_a_prometheus_binary_week_10_scrapes_directly_and_says_how_to_install_one() -> None:
    finding = prometheus_finding("", False, None, NO_DOCKER)
    assert (finding.level, finding.weeks) == (Level.DIFFERS, (10,))
    assert "direct scrape" in finding.effect
    assert "apt-get install -y --no-install-recommends prometheus" in finding.remedy


def test_a_prometheus_binary_is_ok_and_a_container_is_the_next_way() -> None:
    assert prometheus_finding("", False, "/usr/bin/prometheus", NO_DOCKER).level is Level.OK
    assert "container" in prometheus_finding("", False, None, FULL_ENGINE).effect


def test_a_refused_ptrace_makes_week_10_profile_in_process_and_says_how_to_allow_it() -> None:
    assert profiler_finding(None).level is Level.OK
    finding = profiler_finding("kernel.yama.ptrace_scope is 1 and this process lacks CAP_SYS_PTRACE.")
    assert (finding.level, finding.weeks) == (Level.DIFFERS, (10,))
    assert "pyinstrument" in finding.effect and "SYS_PTRACE" in finding.remedy


def test_a_configured_prometheus_that_is_not_ready_is_missing() -> None:
    finding = prometheus_finding("http://127.0.0.1:1", False, "/usr/bin/prometheus", NO_DOCKER)
    assert finding.level is Level.MISSING and "BOOKSTORE_PROMETHEUS_URL" in finding.remedy


def test_traces_fall_back_to_the_embedded_collector_without_jaeger() -> None:
    finding = trace_store_finding("", False, EMPTY_ENGINE)
    assert finding.level is Level.DIFFERS
    assert "embedded collector" in finding.state and JAEGER_IMAGE in finding.state
    assert trace_store_finding("", False, FULL_ENGINE).level is Level.OK
    assert trace_store_finding("http://127.0.0.1:1", False, FULL_ENGINE).level is Level.MISSING


# ---------------------------------------------------------------------------- Docker
def test_docker_absent_changes_nothing_by_itself_and_says_where_it_looked() -> None:
    finding = docker_finding(NO_DOCKER)
    assert finding.level is Level.OK
    assert finding.state == "absent: nothing answers at unix:///var/run/docker.sock (connection refused)"
    assert "docker.io" in finding.remedy


def test_a_missing_socket_reads_as_such_and_an_unknown_cause_is_kept_whole() -> None:
    missing_socket = DockerFacts(
        "no Docker engine answers: ('Connection aborted.', "
        "FileNotFoundError(2, 'No such file or directory'))",
        address="unix:///run/user/docker.sock",
    )
    assert docker_finding(missing_socket).state.endswith("/run/user/docker.sock (no socket there)")
    assert docker_finding(DockerFacts("no Docker engine answers: 404 Not Found")).state.endswith(
        "(404 Not Found)"
    )


def test_an_engine_without_local_images_answers_but_cannot_start_the_course_containers() -> None:
    finding = docker_finding(EMPTY_ENGINE)
    assert finding.level is Level.DIFFERS
    assert finding.state.startswith("answers, but cannot start")
    assert "TESTCONTAINERS_RYUK_DISABLED=true" in finding.remedy


def test_an_engine_holding_images_is_able_to_start_them() -> None:
    finding = docker_finding(DockerFacts(None, frozenset({RABBITMQ_IMAGE}), reaper_disabled=True))
    assert finding.level is Level.OK
    assert finding.state == f"answers and can start {RABBITMQ_IMAGE} without a pull"


def test_an_engine_whose_images_cannot_be_listed_says_why() -> None:
    finding = docker_finding(DockerFacts(None, images_error="ReadTimeout: slow"))
    assert (finding.level, "ReadTimeout" in finding.state) == (Level.DIFFERS, True)


# ---------------------------------------------------------------------------- ports and CPU
def test_too_few_loopback_ports_stop_every_week() -> None:
    assert ports_finding(PortFacts(PORTS_WANTED, "", (32768, 60999))).level is Level.OK
    finding = ports_finding(PortFacts(3, "[Errno 98] Address already in use", None))
    assert (finding.level, finding.weeks) == (Level.MISSING, ALL_WEEKS)
    assert "Address already in use" in finding.state


@pytest.mark.parametrize(
    ("cpu", "level"),
    [
        (CpuFacts(2, (0.5, 0.5, 0.5)), Level.OK),
        (CpuFacts(2, None), Level.OK),
        (CpuFacts(1, (0.1, 0.1, 0.1)), Level.DIFFERS),
        (CpuFacts(2, (5.7, 3.0, 1.0)), Level.DIFFERS),
    ],
)
def test_a_busy_or_small_machine_is_told_its_times_will_differ(cpu: CpuFacts, level: Level) -> None:
    assert cpu_finding(cpu).level is level


# ---------------------------------------------------------------------------- rendering
def test_the_summary_names_the_weeks_that_cannot_run() -> None:
    findings = [
        rabbitmq_finding("", False, False, NO_DOCKER),
        prometheus_finding("", False, None, NO_DOCKER),
        cpu_finding(CpuFacts(2, (0.1, 0.1, 0.1))),
    ]
    assert summary(findings).startswith("1 ok, 1 differ, 1 missing: weeks 9-10 cannot run")
    assert summary(findings[1:]).endswith("its row says what changes")
    assert summary(findings[2:]) == "1 ok, 0 differ, 0 missing: every week runs as written"


def test_text_shows_state_weeks_and_what_to_do_for_each_piece() -> None:
    text = format_text([prometheus_finding("", False, None, NO_DOCKER)])
    assert "[differs] Prometheus: absent" in text
    assert "week 10: the notebook fetches" in text
    assert "what to do: optional: `apt-get install" in text


def test_the_html_table_escapes_text_and_shows_commands_as_code() -> None:
    finding = Finding("a<b", Level.MISSING, "state & more", (9,), "effect", "run `x < y`")
    table = html_table([finding])
    assert "a&lt;b" in table and "state &amp; more" in table
    assert re.search(r"<code[^>]*>x &lt; y</code>", table)
    assert "week 9" in table and "cannot run" in table
