"""The `labkit` command: one subcommand per tool."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("doctor", help="check engine, compose, swarm, base images and ports; say how to fix")
    images = sub.add_parser("images", help="pull the base images, or build offline stand-ins")
    images.add_argument("tags", nargs="*", help="only these tags (default: all)")
    release = sub.add_parser("release", help="regenerate exercises/ from solutions/")
    release.add_argument("--check", action="store_true", help="only report whether exercises/ is up to date")
    release.add_argument("--student", metavar="DIR", help="write the students' repository (no solutions/) into DIR")
    lock = sub.add_parser("lock", help="re-resolve uv.lock and regenerate every requirements file from it")
    lock.add_argument("--upgrade", action="append", metavar="NAME", help="move NAME to its newest allowed release")
    check = sub.add_parser("check-grades", help="assert a grades.json scored full marks or zero")
    check.add_argument("grades")
    check.add_argument("--expect", choices=("full", "zero"), required=True)
    check.add_argument("--same-tests-as", help="another grades.json that must hold the same tests")
    from labkit.grade_many import add_arguments as grade_many_arguments

    grade_many_arguments(sub.add_parser("grade-many", help="grade every submission folder in DIR: grades.csv, "
                                        "feedback and results.json per student"))
    russian = sub.add_parser("notebooks-ru", help="refresh notebooks/ru/ from notebooks/: code and outputs "
                             "copied, the Russian markdown kept")
    russian.add_argument("--check", action="store_true", help="only report what is out of step")
    from labkit.grader_check import add_arguments as grader_check_arguments

    grader_check_arguments(sub.add_parser("grader-check", help="grade the corpus of submissions with known "
                                          "verdicts; fail on any disagreement"))
    compat = sub.add_parser("compat", help="the compatibility matrix: non-root user, no GNU tools, Python 3.13, "
                            "a current engine (slow: 15-35 minutes)")
    compat.add_argument("rows", nargs="*", help="only these rows (default: all)")
    cluster = sub.add_parser("cluster", add_help=False, help="a multi-node swarm of engines in containers: "
                             "up [--nodes 3] [--suite bookworm|trixie], load TAG..., down")
    cluster.add_argument("args", nargs=argparse.REMAINDER)
    clean = sub.add_parser("clean", help="remove every container, network, volume and image the grader left")
    clean.add_argument("--check", action="store_true", help="only fail when something was left")

    args = parser.parse_args(argv)
    if args.command == "doctor":
        from labkit.doctor import run_doctor

        return run_doctor()
    if args.command == "images":
        from labkit.images import ensure_all

        ensure_all(args.tags)
        return 0
    if args.command == "release":
        if args.student:
            from labkit.student_release import main as student_release

            return student_release(args.student)
        from labkit.release import release

        return release(check=args.check)
    if args.command == "lock":
        from labkit.lock import lock

        return lock(args.upgrade)
    if args.command == "check-grades":
        from labkit.report import check_grades

        return check_grades(args.grades, args.expect, args.same_tests_as)
    if args.command == "grade-many":
        from labkit.grade_many import run

        return run(args)
    if args.command == "notebooks-ru":
        from labkit.notebooks_ru import sync

        return sync(check=args.check)
    if args.command == "grader-check":
        from labkit.grader_check import run as grader_check

        return grader_check(args)
    if args.command == "compat":
        from labkit.compat import main as compat

        return compat(args.rows)
    if args.command == "cluster":
        from labkit.cluster import main as cluster

        return cluster(args.args)
    if args.command == "clean":
        from labkit.resources import clean_all, leftovers

        return leftovers() if args.check else clean_all()
    return 2


if __name__ == "__main__":
    sys.exit(main())
