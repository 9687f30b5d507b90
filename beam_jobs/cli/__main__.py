"""`python -m beam_jobs.cli`, as the `beam-jobs` script runs it."""

import sys

from beam_jobs.cli import main

sys.exit(main())
