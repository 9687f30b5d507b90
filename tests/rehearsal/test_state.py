"""rehearsal/state.py: the resumable state, to the record and back, and the
records written before it was typed."""

import json

from google.cloud import datastore

from beam_jobs.records import rehearsals as record_lib
from beam_jobs.rehearsal.state import RehearsalState

# The `resume` field as rehearsals wrote it before RehearsalState existed.
OLD_RESUME = {'verify': ['NoteAuditJob', 'TopicCountJob'],
              'expected_text': 'WRITES: put 4 NoteModel\nre:\\[.*\\]\n',
              'expect_file': 'expected.txt',
              'pipeline_args': ['--runner=DataflowRunner', '--project=p'],
              'namespace': 'ns',
              'base': 'gs://bucket/exports/e1',
              'after_dir': 'gs://bucket/rehearsals/r1/after'}


def _stored(resume):
    """A rehearsal record as the Datastore returns it: the unindexed JSON body."""
    entity = datastore.Entity(datastore.Key(record_lib.REHEARSAL_KIND, 'rehearsal-r1',
                                            project='p'))
    entity.update(job_name='RewriteNotesJob', created_msec=1, verdict='running',
                  body_json=json.dumps({'resume': resume, 'runner': 'DataflowRunner'}))
    return record_lib.RehearsalRecord.from_entity(entity)


def test_the_state_goes_to_the_record_and_back():
    state = RehearsalState(verify=('NoteAuditJob',), expected_text='a line',
                           expect_file=None, pipeline_args=('--x=1',), namespace=None,
                           base='/exports/e1', after_dir='/after')
    record = record_lib.RehearsalRecord('rehearsal-r1', 'RewriteNotesJob',
                                        resume=state.as_record())
    assert json.loads(json.dumps(record.resume)) == record.resume
    assert RehearsalState.from_record(record) == state


def test_a_record_written_before_the_state_was_typed_loads_in_the_same_shape():
    state = RehearsalState.from_record(_stored(OLD_RESUME))
    assert state.verify == ('NoteAuditJob', 'TopicCountJob')
    assert state.pipeline_args == ('--runner=DataflowRunner', '--project=p')
    assert (state.namespace, state.base, state.after_dir) == (
        'ns', 'gs://bucket/exports/e1', 'gs://bucket/rehearsals/r1/after')
    assert [item.text for item in state.expectation] == ['WRITES: put 4 NoteModel',
                                                          're:\\[.*\\]']
    assert state.as_record() == OLD_RESUME     # new records keep the old shape


def test_a_record_missing_some_or_all_of_its_state_takes_the_defaults():
    assert RehearsalState.from_record(_stored({'namespace': 'ns'})) == \
        RehearsalState(namespace='ns')
    for resume in ({}, None):
        state = RehearsalState.from_record(_stored(resume))
        assert state == RehearsalState()
        assert state.expectation is None
