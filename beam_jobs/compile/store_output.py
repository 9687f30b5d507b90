"""The pipeline's last step: the report collapsed, capped and stored.

The lines arrive as `(order, line)` pairs from every worker; one combine
makes the stored report of them (output_format.Tally: repeats collapsed,
failures first, capped, each line's kind kept), and the pipeline itself
writes it to the Datastore (io/stored_output.py), so a Dataflow run's output
reaches the run record the same way a local run's does.
"""

from __future__ import annotations

import apache_beam as beam

from beam_jobs import output_format
from beam_jobs import target as target_lib
from beam_jobs.io import datastore_write
from beam_jobs.io import stored_output


class CollapseLinesFn(beam.CombineFn):
    """Combines `(order, line)` pairs into the stored report."""

    def create_accumulator(self):
        return output_format.Tally()

    def add_input(self, accumulator, ordered_line):
        order, line = ordered_line
        accumulator.add(order, line)
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = output_format.Tally()
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator.report()


class _WriteReportFn(beam.DoFn):
    """The one stored report → its pieces, put by the Datastore client in
    commits of bounded size (a report is a few pieces: no sink needed)."""

    def __init__(self, run_id: str, target: target_lib.Target):
        super().__init__()
        self._run_id = run_id
        self._target = target
        self._put = datastore_write.PutInBatchesFn(target)

    def setup(self):
        self._put.setup()

    def process(self, stored):
        self._put.start_bundle()
        for entity in stored_output.to_entities(stored, self._run_id, self._target):
            self._put.process(entity)
        self._put.finish_bundle()


class StoreOutput(beam.PTransform):
    """Collapse, cap and write a run's `(order, line)` pairs to the Datastore."""

    def __init__(self, run_id: str, target: target_lib.Target):
        super().__init__()
        self._run_id = run_id
        self._target = target

    def expand(self, lines):
        return (
            lines
            | 'Collapse' >> beam.CombineGlobally(CollapseLinesFn())
            # Declared, not inferred (see datastore_write.write_entities).
            | 'Write output' >> beam.ParDo(
                _WriteReportFn(self._run_id, self._target)).with_output_types(None)
        )
