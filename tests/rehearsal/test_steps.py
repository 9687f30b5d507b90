"""rehearsal/steps.py: which step of a running rehearsal is next, from its
record alone (taking the steps is played by tests/rehearsal/test_rehearse.py and
tests/scenarios/test_rehearse_anywhere.py against the emulator)."""

from beam_jobs.records import rehearsals as record_lib
from beam_jobs.rehearsal.state import RehearsalState
from beam_jobs.rehearsal.steps import StepKind, next_step

STATE = RehearsalState(verify=('AuditJob', 'CountJob'))


def _record(durations=None, verify=()):
    return record_lib.RehearsalRecord('rehearsal-r1', 'RewriteNotesJob', run_id='run-1',
                                      durations=durations or {}, verify=list(verify))


def _entry(passed, run_id='run-2'):
    return {'job': 'AuditJob', 'run_id': run_id, 'status': None, 'passed': passed,
            'error_lines': 0, 'reason': None}


def test_the_job_run_comes_first():
    step = next_step(_record(), STATE)
    assert (step.kind, step.waits_for, step.waits) == (StepKind.JOB_ENDED, 'run-1', True)


def test_then_each_verify_job_starts_and_ends_in_turn():
    step = next_step(_record({'job': 1.0}), STATE)
    assert (step.kind, step.index, step.job, step.waits) == (
        StepKind.VERIFY_STARTS, 0, 'AuditJob', False)
    step = next_step(_record({'job': 1.0}, [_entry(None)]), STATE)
    assert (step.kind, step.index, step.waits_for) == (StepKind.VERIFY_ENDED, 0, 'run-2')
    step = next_step(_record({'job': 1.0}, [_entry(True)]), STATE)
    assert (step.kind, step.index, step.job) == (StepKind.VERIFY_STARTS, 1, 'CountJob')


def test_the_verdict_comes_last_whether_the_verify_jobs_passed_or_not():
    record = _record({'job': 1.0}, [_entry(True), _entry(False, None)])
    assert next_step(record, STATE).kind is StepKind.VERDICT
    assert next_step(_record({'job': 1.0}), RehearsalState()).kind is StepKind.VERDICT
