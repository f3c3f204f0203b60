"""The ``bookstore`` command.

bookstore up [--replicas inventory=2] [--work-dir DIR]   start a detached cluster
bookstore status [--work-dir DIR]                        show each process and its health
bookstore down [--work-dir DIR]                          stop it
bookstore dlq list QUEUE [--work-dir DIR]                the dead letters of a queue, with reason and deaths
bookstore dlq replay QUEUE (--all | --id ID...)          publish them again to their original routing
bookstore env [--json]                                   what this machine offers each week, what to install
bookstore course run [--weeks 0,6-10] [--html]           execute the course notebooks headless
bookstore exercises build [--check]                      build exercises/ from solutions/
bookstore exercises release DIR                          the learner's copy of the course, into DIR
bookstore grade SUBMISSIONS... --week N --out DIR        grade notebooks against hidden checks
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bookstore.course import DEFAULT_WEEKS  # light: the runner imports nbclient only when it runs

if TYPE_CHECKING:
    from bookstore.messaging.dead_letters import DeadLetter

DEFAULT_WORK_DIR = Path(".bookstore") / "cluster"


def _replica_counts(values: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        name, _, count = value.partition("=")
        if not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--replicas takes NAME=COUNT with COUNT >= 1, got {value!r}")
        counts[name] = int(count)
    return counts


def cmd_up(args: argparse.Namespace) -> int:
    from bookstore.launcher.cluster import STATE_FILE, Cluster, ClusterError
    from bookstore.messaging.broker import BrokerUnavailable

    work_dir = Path(args.work_dir)
    if (work_dir / STATE_FILE).exists():
        print(f"a cluster already runs from {work_dir}; `bookstore down` first", file=sys.stderr)
        return 1
    try:
        cluster = Cluster(
            replicas=_replica_counts(args.replicas),
            work_dir=work_dir,
            db_url=args.db_url,
            detached=True,
            messaging=args.messaging,
        ).start()
    except (ClusterError, ValueError, BrokerUnavailable) as error:
        print(f"bookstore up failed: {error}", file=sys.stderr)
        return 1
    print(f"bookstore is up in {cluster.startup_seconds:.2f} s (state in {work_dir / STATE_FILE})")
    _print_status(cluster)
    print(f"gateway: {cluster.gateway_url}  (OpenAPI: {cluster.gateway_url}/docs)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bookstore.launcher.cluster import Cluster, ClusterError

    try:
        cluster = Cluster.attach(args.work_dir)
    except ClusterError as error:
        print(error, file=sys.stderr)
        return 1
    _print_status(cluster)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from bookstore.launcher.cluster import Cluster, ClusterError

    try:
        cluster = Cluster.attach(args.work_dir)
    except ClusterError as error:
        print(error, file=sys.stderr)
        return 1
    cluster.stop()
    print("bookstore is down")
    return 0


def _print_status(cluster: object) -> None:
    from bookstore.launcher.cluster import Cluster

    assert isinstance(cluster, Cluster)
    print(f"{'service':<14} {'replica':>7} {'pid':>8}  {'address':<16} state")
    for s in cluster.status():
        print(f"{s.service:<14} {s.replica:>7} {s.pid or '-':>8}  {s.address:<16} {s.state}")


def _dead_letter_target(args: argparse.Namespace) -> tuple[str, str]:
    """(broker URL, dead-letter queue) from --url/--prefix, else the running cluster, else the settings."""
    from bookstore.launcher.cluster import STATE_FILE, Cluster
    from bookstore.messaging.dead_letters import dead_letter_queue_named
    from bookstore.messaging.topology import Topology
    from bookstore.platform.settings import Settings

    settings = Settings.from_env()
    url, prefix = args.url or settings.rabbitmq_url, args.prefix
    if (not url or prefix is None) and (Path(args.work_dir) / STATE_FILE).exists():
        cluster = Cluster.attach(args.work_dir, owned=False)  # `bookstore up --messaging` wrote both
        url, prefix = url or cluster.rabbitmq_url, cluster.messaging_prefix if prefix is None else prefix
    if not url:
        from bookstore.messaging.broker import resolve_rabbitmq_url

        url = resolve_rabbitmq_url(settings)
    topology = Topology(settings.messaging_prefix if prefix is None else prefix)
    return url, dead_letter_queue_named(topology, args.queue)


def cmd_dlq(args: argparse.Namespace) -> int:
    import pika.exceptions

    from bookstore.messaging.broker import BrokerUnavailable
    from bookstore.messaging.dead_letters import dead_letters, replay

    try:
        url, queue = _dead_letter_target(args)
        if args.dlq_command == "list":
            _print_dead_letters(queue, dead_letters(url, queue, limit=args.limit))
            return 0
        if not args.all and not args.ids:
            print("say which: --all, or --id MESSAGE_ID (repeatable)", file=sys.stderr)
            return 2
        result = replay(url, queue, None if args.all else set(args.ids), limit=args.limit)
    except (pika.exceptions.AMQPError, BrokerUnavailable) as error:
        print(f"bookstore dlq: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"replayed {len(result.replayed)} (confirmed, removed from {queue}); left {result.kept}")
    if result.failed:
        print(f"not confirmed, still in the dead-letter queue: {', '.join(result.failed)}", file=sys.stderr)
        return 1
    return 0


def _print_dead_letters(queue: str, letters: list[DeadLetter]) -> None:
    print(f"{queue}: {len(letters)} dead letter(s)")
    print(f"{'message_id':<36}  {'type':<18} {'reason':<18} {'deaths':>6}  replays to")
    for letter in letters:
        target = f"{letter.exchange or '(default exchange)'} {letter.routing_key}"
        reason = f"{letter.reason:<18} {letter.deaths:>6}"
        print(f"{letter.message_id:<36}  {letter.event_type:<18} {reason}  {target}")
        if letter.error:
            print(f"{'':<38}{letter.error}")


def cmd_env(args: argparse.Namespace) -> int:
    """Print one finding per backing piece; exit 1 when a piece some week needs is missing."""
    import json

    from bookstore.environment import Level, format_text, probe

    findings = probe()
    if args.json:
        print(json.dumps([finding.as_dict() for finding in findings], indent=2))
    else:
        print(format_text(findings))
    return 1 if any(finding.level is Level.MISSING for finding in findings) else 0


def cmd_course_run(args: argparse.Namespace) -> int:
    from bookstore.course import NOTEBOOKS, parse_weeks, run_course

    notebooks = Path(args.notebooks) if args.notebooks else NOTEBOOKS
    return run_course(parse_weeks(args.weeks), html=args.html, out_dir=Path(args.out), notebooks=notebooks)


def cmd_exercises_build(args: argparse.Namespace) -> int:
    from bookstore.grading.regions import EXERCISES_DIR, SOLUTIONS_DIR, RegionError, build_all

    solutions = Path(args.solutions_dir) if args.solutions_dir else SOLUTIONS_DIR
    exercises = Path(args.exercises_dir) if args.exercises_dir else EXERCISES_DIR
    try:
        differences = build_all(solutions, exercises, check=args.check)
    except RegionError as error:
        print(f"bookstore exercises build: {error}", file=sys.stderr)
        return 1
    for difference in differences:
        print(difference)
    if args.check:
        if differences:
            print("exercises are out of date: run `bookstore exercises build`", file=sys.stderr)
            return 1
        print("exercises are up to date")
    elif not differences:
        print("exercises were already up to date")
    return 0


def cmd_exercises_release(args: argparse.Namespace) -> int:
    from bookstore.grading.regions import RegionError
    from bookstore.grading.release import ReleaseError, release

    try:
        made = release(Path(args.dir))
    except (ReleaseError, RegionError) as error:
        print(f"bookstore exercises release: {error}", file=sys.stderr)
        return 1
    print(f"wrote the learner's copy of the course to {made.target} ({len(made.files)} files)")
    print("hand out that folder (or push it to a repository of its own); learners clone it")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from bookstore.grading.batch import SHUTDOWN_GRACE_S, GradingError, expand_submissions, grade_batch
    from bookstore.grading.regions import SOLUTIONS_DIR
    from bookstore.grading.sandbox import Limits

    submissions = expand_submissions(Path(p) for p in args.submissions)
    if not submissions:
        print("no submissions found", file=sys.stderr)
        return 1
    try:
        grade_batch(
            submissions,
            week=args.week,
            out_dir=Path(args.out),
            solutions_dir=Path(args.solutions_dir) if args.solutions_dir else SOLUTIONS_DIR,
            workers=args.workers,
            timeout_s=args.timeout,
            check_timeout_s=args.check_timeout,
            cell_timeout_s=args.cell_timeout,
            progress=not args.no_progress,
            isolation=args.isolation,
            limits=Limits(
                memory_bytes=int(args.memory_limit * 1024**2),
                cpu_seconds=math.ceil(args.timeout + SHUTDOWN_GRACE_S),
                processes=args.process_limit,
                total_memory_bytes=int(args.total_memory_limit * 1024**2),
            ),
        )
    except GradingError as error:
        print(f"bookstore grade: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {args.out}/grades.csv holds the submissions graded so far", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bookstore", description="The bookstore microservices course.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the six services in the background")
    up.add_argument("--replicas", action="append", default=[], metavar="NAME=COUNT")
    up.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    up.add_argument("--db-url", default=None, help="SQLAlchemy URL template with {service}")
    up.add_argument(
        "--messaging", action="store_true", help="week 9: RabbitMQ, the outbox relay and the three consumers"
    )
    up.set_defaults(func=cmd_up)
    for name, func, text in (
        ("status", cmd_status, "show the running cluster"),
        ("down", cmd_down, "stop the running cluster"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
        p.set_defaults(func=func)

    dlq = sub.add_parser("dlq", help="week 9: list or replay a queue's dead letters")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, text in (
        ("list", "each dead letter with its reason and death count"),
        ("replay", "publish dead letters again to their original routing, with confirms"),
    ):
        p = dlq_sub.add_parser(name, help=text)
        p.add_argument(
            "queue", metavar="QUEUE", help="analytics, notification, inventory, or a full queue name"
        )
        p.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR), help="the `bookstore up` cluster to ask")
        p.add_argument(
            "--url", default=None, help="the broker (default: the cluster's, BOOKSTORE_RABBITMQ_URL)"
        )
        p.add_argument("--prefix", default=None, help="queue name prefix (default: the cluster's)")
        p.add_argument("--limit", type=int, default=10_000, help="look at this many at most (default 10000)")
        p.set_defaults(func=cmd_dlq)
    dlq_sub.choices["replay"].add_argument("--all", action="store_true", help="every dead letter")
    dlq_sub.choices["replay"].add_argument(
        "--id", dest="ids", action="append", default=[], metavar="MESSAGE_ID", help="this one (repeatable)"
    )

    env = sub.add_parser("env", help="what this machine offers each week (RabbitMQ, Prometheus, Docker, ...)")
    env.add_argument("--json", action="store_true", help="the findings as JSON")
    env.set_defaults(func=cmd_env)

    course = sub.add_parser("course", help="the course notebooks")
    course_sub = course.add_subparsers(dest="course_command", required=True)
    run = course_sub.add_parser("run", help="execute the notebooks headless, in order")
    run.add_argument("--weeks", default=DEFAULT_WEEKS, help=f"e.g. 0, 6-8 or 6,9 (default {DEFAULT_WEEKS})")
    run.add_argument("--html", action="store_true", help="also write HTML with the inline plots")
    run.add_argument("--out", default="build/course")
    run.add_argument("--notebooks", help="the folder of weekNN_*.ipynb to run (default: the course's)")
    run.set_defaults(func=cmd_course_run)

    exercises = sub.add_parser("exercises", help="exercise notebooks, built from the solutions")
    exercises_sub = exercises.add_subparsers(dest="exercises_command", required=True)
    build = exercises_sub.add_parser("build", help="turn each solution region into a TODO stub")
    build.add_argument("--check", action="store_true", help="only list differences; exit 1 if any")
    build.add_argument("--solutions-dir", default=None, help="default: solutions/ of the repository")
    build.add_argument("--exercises-dir", default=None, help="default: exercises/ of the repository")
    build.set_defaults(func=cmd_exercises_build)
    release = exercises_sub.add_parser(
        "release", help="write the learner's copy of the course (no solutions, no checks) into DIR"
    )
    release.add_argument("dir", metavar="DIR", help="a new or empty folder outside this repository")
    release.set_defaults(func=cmd_exercises_release)

    grade = sub.add_parser("grade", help="grade submitted notebooks against a week's hidden checks")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebooks, or folders of them")
    grade.add_argument("--week", type=int, required=True)
    grade.add_argument("--out", required=True, help="where grades.csv and feedback/ go")
    grade.add_argument("--workers", type=int, default=2, help="submissions graded at once (default 2)")
    grade.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per submission, the backstop (default 120)"
    )
    grade.add_argument("--check-timeout", type=float, default=20.0, help="seconds per check (default 20)")
    grade.add_argument(
        "--cell-timeout",
        type=float,
        default=60.0,
        help="seconds per notebook cell; a slower cell is interrupted and the notebook goes on (default 60)",
    )
    grade.add_argument("--solutions-dir", default=None, help="holds checks/weekNN.py (default: solutions/)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.add_argument(
        "--isolation",
        choices=("auto", "bwrap", "none"),
        default="auto",
        help="a bubblewrap sandbox per submission: where available (auto, the default), required, or none",
    )
    grade.add_argument(
        "--memory-limit",
        type=float,
        default=4096,
        help="MiB of address space per learner process (default 4096)",
    )
    grade.add_argument(
        "--total-memory-limit",
        type=float,
        default=4096,
        help="MiB of memory for all of a submission's processes together (memory cgroup; default 4096)",
    )
    grade.add_argument(
        "--process-limit", type=int, default=1024, help="processes and threads per submission (default 1024)"
    )
    grade.set_defaults(func=cmd_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
