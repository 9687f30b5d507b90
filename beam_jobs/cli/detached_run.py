"""`python -m beam_jobs.cli.detached_run ARGS`: `beam-jobs ARGS`, as a run
the console started runs it.

The one difference from `beam-jobs`: it first becomes a user of the
project's emulator (emulator.ensure_environment) when the console was one,
so the emulator stays up for as long as the run needs it, even if the
console stops first. Where DATASTORE_EMULATOR_HOST names a Datastore, that
is used, as by any command. A leading `--records-namespace=N` keeps the
record in the console's namespace for a run that reads several
(`--namespaces`, which does not go with `--namespace`).
"""

import os
import sys

from beam_jobs import cli
from beam_jobs import emulator
from beam_jobs import target

RECORDS_NAMESPACE = '--records-namespace='

if __name__ == '__main__':
    emulator.ensure_environment()
    argv = sys.argv[1:]
    if argv and argv[0].startswith(RECORDS_NAMESPACE):
        os.environ[target.NAMESPACE_ENV] = argv.pop(0)[len(RECORDS_NAMESPACE):]
    sys.exit(cli.main(argv))
