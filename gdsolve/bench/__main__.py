"""`python -m gdsolve.bench`: the same command as `gdsolve bench` (gdsolve.bench.cli.main)."""

import sys

from gdsolve.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m gdsolve.bench"))
