"""`python -m beam_jobs.cli.detached_run ARGS`: `beam-jobs ARGS`, as a run
the console started runs it.

The one difference from `beam-jobs`: it first becomes a user of the
project's emulator (emulator.ensure_environment) when the console was one,
so the emulator stays up for as long as the run needs it, even if the
console stops first. Where DATASTORE_EMULATOR_HOST names a Datastore, that
is used, as by any command.
"""

import sys

from beam_jobs import cli
from beam_jobs import emulator

if __name__ == '__main__':
    emulator.ensure_environment()
    sys.exit(cli.main(sys.argv[1:]))
