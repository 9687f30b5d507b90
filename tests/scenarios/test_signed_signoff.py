"""Signed approvals across machines: nobody can approve as someone else, or
write an approval, or change one, or use it elsewhere, or cut the audit.

Keys are made with ssh-keygen in a temp folder; `allowed_signers` names
alice and bob; the shared records are on a second emulator (the `team`
fixture of test_team_signoff.py); the release machine submits to the
Dataflow stand-in through the gate.
"""

import re
import pytest

from beam_jobs import cli, testing
from beam_jobs.export import write_export
from beam_jobs.records import audit as audit_lib
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.target import Target, client
from tests import job_fixtures as fx
from tests import signing_keys
from tests.scenarios.test_team_signoff import (_cli, _dataflow, _signoff,  # noqa: F401 (fixtures)
                                     shared_emulator, shout_package, team)


@pytest.fixture
def keys(tmp_path, monkeypatch):
    """alice's, bob's and the release machine's keys; the release machine's
    may sign gate decisions only, so alice and bob are the approvers."""
    folder = tmp_path / 'keys'
    allowed = signing_keys.make(folder, ('alice', 'bob', 'rel'),
                                options={'rel': 'namespaces="beam-jobs-gate"'})
    monkeypatch.setenv('BEAM_JOBS_ALLOWED_SIGNERS', str(allowed))
    monkeypatch.delenv('BEAM_JOBS_SIGNING_KEY', raising=False)
    return folder


def _as(monkeypatch, key):
    if key is None:
        monkeypatch.delenv('BEAM_JOBS_SIGNING_KEY', raising=False)
    else:
        monkeypatch.setenv('BEAM_JOBS_SIGNING_KEY', str(key))


def test_only_a_signed_approval_for_this_target_lets_a_run_through(
        capsys, team, keys, stub, gcs, tmp_path, shout_package, monkeypatch):
    _, registry = shout_package
    with testing.ndb_context(Target(testing.TEST_PROJECT, team.namespace('sean'))):
        export = write_export(fx.notes(3), str(tmp_path / 'notes'), project='prod')
    team('bob')
    code, out, err = _cli(capsys, 'request', 'ShoutJob', registry=registry)
    assert code == 0, err
    request_id = re.match(r'Request ID: (\S+)', out).group(1)
    team('sean')
    code, out, err = _cli(capsys, 'rehearse', '--request', request_id, '--export', export,
                          registry=registry)
    assert code == 0, out + err
    rehearsal_id = re.match(r'Rehearsal ID: (\S+)', out).group(1)
    approve = ['approve', rehearsal_id, '--project', testing.TEST_PROJECT,
               '--target-namespace', team.namespace('rel')]

    # LOGNAME=alice without alice's key: refused, nothing recorded.
    team('alice')
    code, _, err = _cli(capsys, *approve, registry=registry)
    assert code == cli.EXIT_USAGE and 'No signing key: set `signing_key`' in err
    _as(monkeypatch, keys / 'bob')
    code, _, err = _cli(capsys, *approve, registry=registry)
    assert code == cli.EXIT_USAGE and "signing_key is bob's key" in err
    # The requester cannot approve their own request.
    team('bob')
    code, _, err = _cli(capsys, *approve, registry=registry)
    assert code == cli.EXIT_USAGE and 'bob requested this job, so may not approve it' in err
    # The release machine's key signs gate decisions, not approvals.
    team('rel')
    _as(monkeypatch, keys / 'rel')
    code, _, err = _cli(capsys, *approve, registry=registry)
    assert code == cli.EXIT_USAGE and 'only the named approvers (alice, bob)' in err
    records = rehearsal_records.RehearsalStore(_signoff())
    assert records.get(rehearsal_id).approvals == []

    # Alice signs: the release machine's run goes through, its decision signed.
    team('alice')
    _as(monkeypatch, keys / 'alice')
    code, out, err = _cli(capsys, *approve, registry=registry)
    assert code == 0 and 'approved by alice (signed)' in out, err
    team('rel')
    _as(monkeypatch, keys / 'rel')
    code, _, err = _cli(capsys, 'run', 'ShoutJob', *_dataflow(stub), registry=registry)
    assert code == 0, err
    assert audit_lib.AuditStore(_signoff()).newest_first(1)[0].signature
    code, out, _ = _cli(capsys, 'rehearsal', rehearsal_id, registry=registry)
    assert (f'[signed by alice for {testing.TEST_PROJECT}/{team.namespace("rel")}]'
            in out)

    def refused(*more):
        code, _, err = _cli(capsys, 'run', 'ShoutJob', *_dataflow(stub, *more),
                            registry=registry)
        assert code == cli.EXIT_USAGE, err
        return err

    # Approved for this project, not another.
    err = refused('--project=other-project')
    assert f'alice approved it for project {testing.TEST_PROJECT}, not other-project' in err

    signed = records.get(rehearsal_id)
    # The params field edited afterwards.
    records.change(rehearsal_id, lambda r: r.params.update(limit=5))
    assert "its params differs from what alice signed" in refused()
    # An approval written straight into the records.
    records.save(signed)
    records.change(rehearsal_id, lambda r: r.approvals.__setitem__(
        0, {'user': 'alice', 'note': '', 'at_msec': 1}))
    assert 'the approval by alice is refused: it has no signature' in refused()
    records.save(signed)
    assert _cli(capsys, 'run', 'ShoutJob', *_dataflow(stub), registry=registry)[0] == 0

    # Alice's key revoked: her approval stops passing.
    revoked = keys / 'revoked_keys'
    revoked.write_text((keys / 'alice.pub').read_text())
    monkeypatch.setenv('BEAM_JOBS_REVOKED_KEYS', str(revoked))
    assert "it is signed by alice's revoked key" in refused()

    # The audit chain: whole, its signed decisions verified, then an entry
    # deleted is named.
    code, out, _ = _cli(capsys, 'audit', '--verify')
    assert code == 0 and 'each signature verified' in out
    audit = audit_lib.AuditStore(_signoff())
    second = [d for d in audit.newest_first(None) if d.seq == 2][0]
    client(_signoff()).delete(client(_signoff()).key(audit_lib.DECISION_KIND,
                                                     second.decision_id))
    code, _, err = _cli(capsys, 'audit', '--verify')
    assert code == cli.EXIT_USAGE and 'Audit entry 2 was removed' in err

    # Bob withdraws the approval, signed with his key.
    team('bob')
    _as(monkeypatch, keys / 'bob')
    assert _cli(capsys, 'withdraw', rehearsal_id, '--reason', 'key leaked',
                registry=registry)[0] == 0
    withdrawn = records.get(rehearsal_id).approvals[0]['withdrawn']
    assert withdrawn['by'] == 'bob' and 'BEGIN SSH SIGNATURE' in withdrawn['signature']


def test_the_console_approves_only_where_allowed_and_marks_it(keys, datastore_target,
                                                             tmp_path, monkeypatch):
    """A browser holds no key: in signed mode the console offers the command;
    with console_approvals = true a token approves, marked as from the console."""
    import hashlib

    from beam_jobs import console as console_lib
    from tests import console_helpers
    rehearsals = rehearsal_records.RehearsalStore(datastore_target)
    passed = rehearsals.create('TopicCountJob', verdict='passed', rehearsed_by='sean')
    users_file = tmp_path / 'users'
    users_file.write_text(f'alice: {hashlib.sha256(b"tok-alice").hexdigest()}\n')
    users = console_lib.read_users(str(users_file))
    url = f'/api/rehearsals/{passed.rehearsal_id}/approve'
    with console_helpers.client(datastore_target, users=users) as browser:
        signed_in = {'Authorization': 'Bearer tok-alice'}
        response = browser.post(url, json={'note': 'ok'}, headers=signed_in)
        assert response.status_code == 403
        assert (f'run `beam-jobs approve {passed.rehearsal_id} --project PROJECT` on your '
                'machine') in response.json()['error']
        assert rehearsals.get(passed.rehearsal_id).approvals == []
        monkeypatch.setenv('BEAM_JOBS_CONSOLE_APPROVALS', 'true')
        response = browser.post(url, json={'note': 'ok'}, headers=signed_in)
        assert response.status_code == 200, response.text
        approval = response.json()['approvals'][0]
        assert (approval['user'], approval['via']) == ('alice', 'console')
        page = browser.get(f'/rehearsals/{passed.rehearsal_id}', headers=signed_in).text
        assert 'console approval (not signed)' in page
