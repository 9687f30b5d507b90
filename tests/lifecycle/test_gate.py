"""lifecycle/gate.py: the production gate. Its verdict from the rehearsal
records alone (`evaluate`), what counts as production, an export's age, who
may approve, and that it asks the plan's write mode. Met on the way: a
Dataflow submission (tests/lifecycle/test_dataflow.py), the team's sign-off
across machines and signed approvals (tests/scenarios/test_team_signoff.py,
test_signed_signoff.py)."""

import datetime
import time

import pytest

from beam_jobs.lifecycle import code_version, gate, planning
from beam_jobs.records.rehearsals import RehearsalStore
from tests import job_fixtures as fx

JOB = fx.TopicTagMigrationJob


def _rehearsed(params=None):
    """What a rehearsal of JOB over a fresh export records."""
    return {'code_version': {'fingerprint': code_version.fingerprint(JOB, params or {})},
            'export': {'timestamp': time.strftime('%Y-%m-%dT%H:%M:%S_000', time.gmtime())}}


def test_the_verdict_follows_the_rehearsal_records(datastore_target, monkeypatch):
    monkeypatch.delenv('BEAM_JOBS_APPROVERS', raising=False)
    monkeypatch.delenv('BEAM_JOBS_ALLOWED_SIGNERS', raising=False)
    rehearsals = RehearsalStore(datastore_target)
    verdict = gate.evaluate(JOB, {}, rehearsals)
    assert (verdict.state, verdict.may_run) == ('unrehearsed', False)
    passed = rehearsals.create(JOB.__name__, verdict='passed', **_rehearsed())
    verdict = gate.evaluate(JOB, {}, rehearsals)
    assert (verdict.state, verdict.rehearsal_id) == ('unapproved', passed.rehearsal_id)
    rehearsals.approve(passed.rehearsal_id, 'sean', 'looks right')
    verdict = gate.evaluate(JOB, {}, rehearsals)
    assert (verdict.state, verdict.may_run, verdict.approved_by) == ('may run', True, ['sean'])
    # Other params are another run: the approval does not cover it.
    other = gate.evaluate(JOB, {'topic': 'x'}, rehearsals)
    assert (other.state, other.may_run) == ('not covered', False)
    assert other.reasons == ['param topic is "x" here, null in the rehearsal']


def test_the_gate_asks_the_plans_write_mode(datastore_target, export, monkeypatch):
    monkeypatch.setattr(gate, 'is_production', lambda is_dataflow: True)
    with pytest.raises(gate.GateError, match='no approved rehearsal'):
        planning.plan_run(fx.TopicTagMigrationJob)
    assert planning.plan_run(fx.TopicTagMigrationJob, {'dry_run': True}).gate == {}
    assert planning.plan_run(fx.TopicTagMigrationJob, export=export).gate == {}


def test_production_is_dataflow_or_a_real_datastore(monkeypatch):
    monkeypatch.setenv('DATASTORE_EMULATOR_HOST', 'localhost:8081')
    monkeypatch.setenv('BEAM_JOBS_REAL_DATASTORE', '1')
    assert gate.is_production(True) and not gate.is_production(False)
    monkeypatch.delenv('DATASTORE_EMULATOR_HOST')
    assert gate.is_production(False)
    monkeypatch.delenv('BEAM_JOBS_REAL_DATASTORE')
    assert not gate.is_production(False)   # the project's own emulator


def test_an_exports_age_is_counted_from_its_own_timestamp():
    now = datetime.datetime(2024, 3, 11, 12, tzinfo=datetime.timezone.utc)
    assert gate.export_age_days({'timestamp': '2024-03-01T12:00:00_81234'}, now) == 10
    assert gate.export_age_days({'timestamp': 'last week'}, now) is None
    assert gate.export_age_days({}, now) is None


def test_who_may_approve_and_whether_the_gate_is_on_are_settings(monkeypatch):
    monkeypatch.delenv('BEAM_JOBS_ALLOWED_SIGNERS', raising=False)
    monkeypatch.setenv('BEAM_JOBS_APPROVERS', ' sean, maria ,')
    assert gate.approvers() == ['sean', 'maria']
    monkeypatch.setenv('BEAM_JOBS_APPROVERS', '')
    assert gate.approvers() is None      # anyone may
    monkeypatch.setenv('BEAM_JOBS_REQUIRE_REHEARSAL', 'off')
    assert not gate.required()
    monkeypatch.setenv('BEAM_JOBS_REQUIRE_REHEARSAL', 'true')
    assert gate.required()
