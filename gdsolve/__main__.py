"""The `gdsolve` console script (pyproject: gdsolve = "gdsolve.__main__:main"), `python -m gdsolve`.

Subcommands: `bench` (gdsolve.bench). Kept tiny so that `gdsolve --help` stays instant.
"""

import argparse
import sys


def build_parser():
    import gdsolve

    parser = argparse.ArgumentParser(
        prog="gdsolve",
        description="gdsolve: gradient-descent solvers with compiled loops behind scikit-learn "
                    "estimators.",
    )
    parser.add_argument("--version", action="version", version=f"gdsolve {gdsolve.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("bench", add_help=False,
                   help="benchmark gdsolve against closed-form solvers, scikit-learn and PyTorch "
                        "(gdsolve bench --help)")
    return parser


def main(argv=None):
    """Dispatch a subcommand; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from gdsolve.bench import main as bench_main

        return bench_main(argv[1:], prog="gdsolve bench")
    parser = build_parser()
    parser.parse_args(argv)  # --help, --version and unknown commands exit here
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
