"""What becomes of a run's writes: decided once, when the run is planned.

    apply         puts and deletes go to the run's Datastore, each only after
                  its before-image is stored (io/before_images.py) unless
                  the run opted out (`--no-backup`)
    dry_run       nothing is written; the output says what would have been
    after_state   a rehearsal: they go to an after state's files, never a Datastore
    report_only   a run over an export: it writes to no Datastore, so they
                  are reported as in a dry run

The plan carries the mode; the pipeline (where the writes go), the production
gate (whether the run changes data), the write summary in the output and the
console's confirmation all read it, and none decides again from flags or paths.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import apache_beam as beam

from beam_jobs import output_format
from beam_jobs import target as target_lib
from beam_jobs.export import after_state as after_state_lib
from beam_jobs.io import before_images
from beam_jobs.io import datastore_write

APPLY, DRY_RUN, AFTER_STATE, REPORT_ONLY = 'apply', 'dry_run', 'after_state', 'report_only'
# Where a run's writes go; what it returns is of no use.
Sink = beam.PTransform[beam.PCollection[before_images.Write], Any]


@dataclasses.dataclass(frozen=True)
class WriteMode:
    name: str
    after_state: Optional[str] = None    # the folder, for AFTER_STATE
    # APPLY: where before-images go (the folder of this run's backup: see
    # `for_run`); None with --no-backup.
    backup: Optional[str] = None

    @property
    def changes_datastore(self) -> bool:
        """Whether the run's writes reach a Datastore (the gate's question)."""
        return self.name == APPLY

    @property
    def keeps_before_images(self) -> bool:
        return self.name == APPLY and bool(self.backup)

    def for_run(self, run_id: str) -> 'WriteMode':
        """The mode of one run: its backup in a folder of its own under the
        planned backup location."""
        if not self.keeps_before_images or self.backup is None:
            return self
        return dataclasses.replace(self, backup=before_images.run_folder(self.backup, run_id))

    def summary(self, op: str, count: int, kind: str) -> str:
        """The output line that sums up the writes of one op and kind."""
        return output_format.write_summary(self.name, op, count, kind)

    def sink(self, target: target_lib.Target) -> Optional[Sink]:
        """Where the writes go, or None where they are only reported."""
        if self.name == APPLY and self.backup:
            return _BackUpThenApply(self.backup, target)
        if self.name == APPLY:
            return datastore_write.ApplyWrites(target)
        if self.name == AFTER_STATE and self.after_state:
            return after_state_lib.WriteAfterState(self.after_state)
        return None

    def describe(self, kinds: str, where: str) -> str:
        """What the run may write, for a person about to start it."""
        if self.name == DRY_RUN:
            return ('Nothing: a dry run writes nothing; its output reports '
                    'what it would put or delete.')
        if self.name == REPORT_ONLY:
            return ('Nothing to any Datastore: a run over an export reads the '
                    'export and writes only its run record and output.')
        if self.name == AFTER_STATE:
            return (f'Only into the after state {self.after_state}: a '
                    'rehearsal writes to no Datastore.')
        kept = (f' Before each write, the entity as it was is kept under '
                f'{self.backup} (`beam-jobs revert RUN_ID` puts it back).'
                if self.backup else ' No before-images are kept (--no-backup): '
                'it cannot be reverted.')
        return (f'It may put or delete entities of kinds {kinds} (and of any '
                f'other kind its map writes) in the Datastore of {where}.{kept} '
                'A dry run first shows what it would write.')


class _BackUpThenApply(Sink):
    """Writes → before-images stored → the same writes applied: in the
    graph (and on Dataflow's job page) the backup step comes first."""

    def __init__(self, backup: str, target: target_lib.Target):
        super().__init__()
        self._backup = backup
        self._target = target

    # Types in a comment: Beam would take annotations here as its type hints.
    def expand(self, writes):  # type: (beam.PCollection[before_images.Write]) -> Any
        return (writes
                | 'Keep before-images' >> before_images.KeepBeforeImages(
                    self._backup, self._target)
                | 'Apply writes' >> datastore_write.ApplyWrites(self._target))


def decide(*, reads_export: bool, dry_run: bool,
           after_state: Optional[str] = None,
           backup: Optional[str] = None) -> WriteMode:
    """The one place a run's write mode is decided (`backup`: the location
    of before-images for a run that applies its writes)."""
    if dry_run:
        return WriteMode(DRY_RUN)
    if after_state:
        return WriteMode(AFTER_STATE, after_state)
    if reads_export:
        return WriteMode(REPORT_ONLY)
    return WriteMode(APPLY, backup=backup)
