"""The ``bookstore`` command.

bookstore up [--replicas inventory=2] [--work-dir DIR]   start a detached cluster
bookstore status [--work-dir DIR]                        show each process and its health
bookstore down [--work-dir DIR]                          stop it
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

from bookstore.course import DEFAULT_WEEKS  # light: the runner imports nbclient only when it runs

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
    from bookstore.messaging.broker import BrokerUnavailable
    from bookstore.platform.cluster import STATE_FILE, Cluster, ClusterError

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
    from bookstore.platform.cluster import Cluster, ClusterError

    try:
        cluster = Cluster.attach(args.work_dir)
    except ClusterError as error:
        print(error, file=sys.stderr)
        return 1
    _print_status(cluster)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from bookstore.platform.cluster import Cluster, ClusterError

    try:
        cluster = Cluster.attach(args.work_dir)
    except ClusterError as error:
        print(error, file=sys.stderr)
        return 1
    cluster.stop()
    print("bookstore is down")
    return 0


def _print_status(cluster: object) -> None:
    from bookstore.platform.cluster import Cluster

    assert isinstance(cluster, Cluster)
    print(f"{'service':<14} {'replica':>7} {'pid':>8}  {'address':<16} state")
    for s in cluster.status():
        print(f"{s.service:<14} {s.replica:>7} {s.pid or '-':>8}  {s.address:<16} {s.state}")


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
