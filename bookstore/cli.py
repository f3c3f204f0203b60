"""The ``bookstore`` command.

bookstore up [--replicas inventory=2] [--work-dir DIR]   start a detached cluster
bookstore status [--work-dir DIR]                        show each process and its health
bookstore down [--work-dir DIR]                          stop it
bookstore course run [--weeks 6-10] [--html]             execute the course notebooks headless
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    from bookstore.platform.cluster import STATE_FILE, Cluster, ClusterError

    work_dir = Path(args.work_dir)
    if (work_dir / STATE_FILE).exists():
        print(f"a cluster already runs from {work_dir}; `bookstore down` first", file=sys.stderr)
        return 1
    try:
        cluster = Cluster(
            replicas=_replica_counts(args.replicas), work_dir=work_dir, db_url=args.db_url, detached=True
        ).start()
    except (ClusterError, ValueError) as error:
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
    print(f"{'service':<10} {'replica':>7} {'pid':>8}  {'address':<16} state")
    for s in cluster.status():
        print(f"{s.service:<10} {s.replica:>7} {s.pid or '-':>8}  {s.address:<16} {s.state}")


def cmd_course_run(args: argparse.Namespace) -> int:
    from bookstore.course import parse_weeks, run_course

    return run_course(parse_weeks(args.weeks), html=args.html, out_dir=Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bookstore", description="The bookstore microservices course.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the six services in the background")
    up.add_argument("--replicas", action="append", default=[], metavar="NAME=COUNT")
    up.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    up.add_argument("--db-url", default=None, help="SQLAlchemy URL template with {service}")
    up.set_defaults(func=cmd_up)
    for name, func, text in (
        ("status", cmd_status, "show the running cluster"),
        ("down", cmd_down, "stop the running cluster"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
        p.set_defaults(func=func)

    course = sub.add_parser("course", help="the course notebooks")
    course_sub = course.add_subparsers(dest="course_command", required=True)
    run = course_sub.add_parser("run", help="execute the notebooks headless, in order")
    run.add_argument("--weeks", default="6-10", help="e.g. 6, 6-8 or 6,9")
    run.add_argument("--html", action="store_true", help="also write HTML with the inline plots")
    run.add_argument("--out", default="build/course")
    run.set_defaults(func=cmd_course_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
