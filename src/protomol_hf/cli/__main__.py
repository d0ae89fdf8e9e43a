"""`python -m protomol_hf.cli`: the `protomol` command."""

import sys

from .main import main

sys.exit(main())
