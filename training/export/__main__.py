"""`python -m training.export` is `rlpa export`: one command line (training/cli.py)."""

import sys

from training import cli

raise SystemExit(cli.main(["export", *sys.argv[1:]]))
