"""What a running rehearsal needs to be taken on, typed: its resumable state.

A rehearsal on Dataflow is taken on by whoever reads it next, on any machine
(steps.py), so what the steps need beyond the record's own fields (the verify
jobs to run, the expected output, where its runs read and write) is kept in
the record, as its `resume` field. This module is the one place that reads
and writes that field; everything else asks a `RehearsalState`.

The stored shape is a plain JSON object whose keys are the field names below;
it is the shape rehearsals have always written, so a record written before
this class existed loads as it is (a key it lacks takes the default).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from beam_jobs.records import rehearsals as record_lib
from beam_jobs.rehearsal import expect as expect_lib


@dataclasses.dataclass(frozen=True)
class RehearsalState:
    """Fixed when the rehearsal starts; the steps only read it."""

    # The verify jobs, by registry name, in the order they run.
    verify: tuple[str, ...] = ()
    # The expected output (its text, so a reader without the file can check
    # it), and the file it came from, which the report names.
    expected_text: Optional[str] = None
    expect_file: Optional[str] = None
    # The Beam flags of the rehearsal's runs, so a verify job started on
    # another machine runs where the job ran.
    pipeline_args: tuple[str, ...] = ()
    namespace: Optional[str] = None
    # What the job read (the export, or an after state) and where its after
    # state goes: the after state's manifest names both.
    base: Optional[str] = None
    after_dir: Optional[str] = None

    @classmethod
    def from_record(cls, record: record_lib.RehearsalRecord) -> RehearsalState:
        """The state a record keeps; a missing `resume` (or key) is the default."""
        resume: dict[str, Any] = record.resume or {}
        return cls(verify=tuple(resume.get('verify') or ()),
                   expected_text=resume.get('expected_text'),
                   expect_file=resume.get('expect_file'),
                   pipeline_args=tuple(resume.get('pipeline_args') or ()),
                   namespace=resume.get('namespace'),
                   base=resume.get('base'),
                   after_dir=resume.get('after_dir'))

    def as_record(self) -> dict[str, Any]:
        """The record's `resume` field: JSON, lists where the fields are tuples."""
        return {'verify': list(self.verify),
                'expected_text': self.expected_text,
                'expect_file': self.expect_file,
                'pipeline_args': list(self.pipeline_args),
                'namespace': self.namespace,
                'base': self.base,
                'after_dir': self.after_dir}

    @property
    def expectation(self) -> Optional[list[expect_lib.Expected]]:
        """The expected output's lines, parsed; None without one."""
        if self.expected_text is None:
            return None
        return expect_lib.parse_text(self.expected_text, self.expect_file or 'the request')
