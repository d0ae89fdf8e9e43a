"""The `protomol` command line: one module per subcommand (train, predict, fingerprint, explain), shared
options and error reporting in `common`, the parser in `main`."""

from .common import UsageError, run_reporting_user_errors
from .main import build_parser, main

__all__ = ["UsageError", "build_parser", "main", "run_reporting_user_errors"]
