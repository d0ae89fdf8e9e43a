"""`python -m benchmarks.harness`: the benchmark harness's command line (benchmarks/harness/cli.py)."""

import sys

from benchmarks.harness.cli import main

sys.exit(main())
