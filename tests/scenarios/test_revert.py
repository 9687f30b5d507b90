"""`beam-jobs revert`: the demo migration taken back, conflicts named, and back again."""

import pathlib
import re

import pytest
from google.cloud.datastore import helpers

from beam_jobs import target as target_lib
from beam_jobs.export import decode, metadata, protos, records
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import revert as revert_lib
from beam_jobs.records import runs
from pipelines import exp_jobs_one_off, sample_data
from pipelines.models import exp_models
from tests import export_helpers

MIGRATION = exp_jobs_one_off.ExplorationContentMigrationOneOffJob
KIND = 'ExplorationModel'


def _canonical(record: bytes) -> bytes:
    """An export record with its properties in name order: the emulator
    keeps no order of properties across puts (an entity put back exactly as
    read exports them in another order), and the Datastore defines none.
    Every other byte is compared as stored."""
    proto = protos.EntityProto.FromString(record)
    for field in ('property', 'raw_property'):
        ordered = sorted(getattr(proto, field), key=lambda p: p.SerializeToString())
        del getattr(proto, field)[:]
        getattr(proto, field).extend(ordered)
    return proto.SerializeToString()


def _export_bytes(emulator, target, folder) -> dict:
    """Each exploration of the test's namespace as its export stores it."""
    path = export_helpers.export_namespace(emulator, target, folder, kinds=[KIND])
    info = metadata.read_export_info(path)
    decoder = decode.EntityDecoder(target.project)
    found = {}
    for data_file in info.data_files(KIND, target.namespace):
        with open(data_file, 'rb') as stream:
            for _, record in records.read_records(stream, data_file):
                found[decoder.decode(record).key.path_elements[-1]] = _canonical(record)
    return found


def _revert(store, run_id, **flags):
    plan = revert_lib.plan_revert(store, run_id, job_lookup=lambda name: MIGRATION, **flags)
    return launcher.start(plan, store, store.create(plan.job_name).run_id)


def test_a_reverted_migration_is_the_export_before_it_but_for_named_conflicts(
        datastore_emulator, datastore_target, tmp_path):
    sample_data.load(3000, datastore_target)
    store = runs.RunStore(datastore_target)
    before = _export_bytes(datastore_emulator, datastore_target, tmp_path)
    migration = launcher.run_job(MIGRATION, target=datastore_target)
    assert migration.status == runs.COMPLETED, migration.error
    assert migration.backup['writes'] > 900

    # Ten migrated explorations changed by hand after the migration.
    client = target_lib.client(datastore_target)
    migrated = _export_bytes(datastore_emulator, datastore_target, tmp_path)
    changed_ids = sorted(key for key in migrated if migrated[key] != before.get(key))[:10]
    assert len(changed_ids) == 10
    for exp_id in changed_ids:
        entity = client.get(client.key(KIND, exp_id, namespace=datastore_target.namespace))
        entity['title'] = 'edited by hand'
        client.put(entity)
    edited = _export_bytes(datastore_emulator, datastore_target, tmp_path)

    reverted = _revert(store, migration.run_id)
    assert reverted.status == runs.COMPLETED, reverted.error
    conflicts = [line for line in store.output(reverted.run_id) if line.startswith('Conflict')]
    assert sorted(conflicts) == sorted(
        f'Conflict: {KIND}/{exp_id}@{datastore_target.namespace} changed since run '
        f'{migration.run_id} wrote it; left as it is (revert --force puts its '
        'before-image back).' for exp_id in changed_ids)
    now = _export_bytes(datastore_emulator, datastore_target, tmp_path)
    assert {k: v for k, v in now.items() if k not in changed_ids} == \
        {k: v for k, v in before.items() if k not in changed_ids}
    assert all(client.get(client.key(KIND, exp_id, namespace=datastore_target.namespace))
               ['title'] == 'edited by hand' for exp_id in changed_ids)

    forced = _revert(store, migration.run_id, force=True)
    assert forced.status == runs.COMPLETED, forced.error
    assert _export_bytes(datastore_emulator, datastore_target, tmp_path) == before

    # Each revert kept before-images of its own: reverting both (the newest
    # first) gives back the migration's state, hand edits included.
    for revert_run in (forced, reverted):
        again = _revert(store, revert_run.run_id)
        assert again.status == runs.COMPLETED, again.error
        assert not [line for line in store.output(again.run_id) if line.startswith('Conflict')]
    assert _export_bytes(datastore_emulator, datastore_target, tmp_path) == edited


# The command line: what a coordinator types, and what is refused.

from beam_jobs import cli, testing  # noqa: E402
from beam_jobs.io import before_images  # noqa: E402
from beam_jobs.records import audit as audit_lib  # noqa: E402
from tests import cli_process, job_fixtures as fx  # noqa: E402


def _cli(capsys, *argv):
    code = cli.main([*cli_process.REGISTRY, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _tagged(capsys, target, count=6):
    with testing.ndb_context(target):
        testing.put_models(target, fx.notes(count, deleted_every=3))
    code, out, err = _cli(capsys, 'run', 'TopicTagMigrationJob')
    assert code == 0, err
    return re.search(r'^Run (\S+)$', out, re.M).group(1), out


def test_the_cli_names_the_backup_then_reverts_with_a_dry_run_first(capsys, datastore_target):
    run_id, out = _tagged(capsys, datastore_target)
    assert f'Backup: before-images of 6 writes at ' in out
    assert f'undo: beam-jobs revert {run_id} --dry-run' in out
    code, out, err = _cli(capsys, 'revert', run_id, '--dry-run')
    assert code == 0, err
    assert 'DRY RUN: would delete 4 TagModel (nothing was written)' in out
    assert 'DRY RUN: would put 2 NoteModel (nothing was written)' in out
    code, out, err = _cli(capsys, 'revert', run_id, '--reason', 'wrong tags')
    assert code == 0, err
    assert 'WRITES: delete 4 TagModel' in out and 'WRITES: put 2 NoteModel' in out
    client = target_lib.client(datastore_target)
    assert list(client.query(kind='TagModel').fetch()) == []
    revert_id = re.search(r'^Run (\S+):', out, re.M).group(1)
    code, out, _ = _cli(capsys, 'status', revert_id)
    assert f'revert of: {run_id}' in out


def test_what_a_revert_refuses(capsys, datastore_target, tmp_path):
    code, _, err = _cli(capsys, 'revert', 'NoSuchJob-1-1')
    assert code == 2 and 'No run' in err
    code, out, err = _cli(capsys, 'run', 'TopicTagMigrationJob', '--dry-run')
    dry_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    code, _, err = _cli(capsys, 'revert', dry_id)
    assert code == 2 and 'was a dry run: it wrote nothing' in err
    code, out, err = _cli(capsys, 'run', 'TopicTagMigrationJob')
    empty_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    code, _, err = _cli(capsys, 'revert', empty_id)
    assert code == 2 and 'wrote nothing' in err

    run_id, _ = _tagged(capsys, datastore_target)
    location = runs.RunStore(datastore_target).get(run_id).backup['location']
    [image] = [path for path in pathlib.Path(location).rglob('output-*')
               if 'NoteModel' in str(path)]
    image.write_bytes(image.read_bytes()[:-3] + b'xyz')
    code, _, err = _cli(capsys, 'revert', run_id)
    assert code == 2 and f'The backup file {image} is damaged' in err
    image.unlink()
    code, _, err = _cli(capsys, 'revert', run_id)
    assert code == 2 and f'The backup file {image} is missing' in err
    (pathlib.Path(location) / before_images.MANIFEST).unlink()
    code, _, err = _cli(capsys, 'revert', run_id)
    assert code == 2 and 'The backup manifest' in err and 'is missing or damaged' in err
    assert len(list(target_lib.client(datastore_target).query(kind='TagModel').fetch())) == 4


def test_a_run_without_backup_says_so_and_an_unwritable_location_is_refused(
        capsys, datastore_target, tmp_path):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(3))
    blocked = tmp_path / 'a-file'
    blocked.write_text('not a folder')
    store = runs.RunStore(datastore_target)
    code, _, err = _cli(capsys, 'run', 'TopicTagMigrationJob',
                        '--backup_location', str(blocked / 'backups'))
    assert code == 2 and f'The backup location {blocked / "backups"} cannot be written' in err
    assert store.recent() == []   # refused before any record, any write
    code, out, err = _cli(capsys, 'run', 'TopicTagMigrationJob', '--no-backup')
    assert code == 0, err
    assert 'Backup: none (run with --no-backup' in out
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    code, _, err = _cli(capsys, 'revert', run_id)
    assert code == 2 and 'kept no before-images' in err
    code, out, _ = _cli(capsys, 'run', 'TopicTagMigrationJob', '--retry-failed', run_id)
    assert 'kept no before-images' in _


def test_a_production_revert_needs_a_reason_and_is_audited_with_who_and_why(datastore_target):
    from beam_jobs.lifecycle import gate  # pylint: disable=import-outside-toplevel
    audit = audit_lib.AuditStore(datastore_target)
    asked = dict(params={'revert_of': 'Job-1-1'}, is_dataflow=True, changes_datastore=True,
                 skip=None, rehearsals=lambda: None, audit=lambda: audit,
                 runner='DataflowRunner', project='prod')
    with pytest.raises(gate.GateError, match='pass --reason TEXT'):
        gate.check(fx.TopicTagMigrationJob, revert=gate.Revert('Job-1-1', 'ana', None), **asked)
    decided = gate.check(fx.TopicTagMigrationJob,
                         revert=gate.Revert('Job-1-1', 'ana', 'bad tags'), **asked)
    assert decided == {'gate': 'revert', 'revert_of': 'Job-1-1', 'by': 'ana',
                       'reason': 'bad tags'}
    [entry] = audit.newest_first()
    assert entry.decision == audit_lib.REVERT
    assert entry.reason == 'revert of run Job-1-1 by ana: bad tags'

    no_backup = gate.check(fx.TopicTagMigrationJob, no_backup=True,
                           **{**asked, 'skip': gate.Skip('ana', 'hotfix')})
    assert no_backup['gate'] == 'skipped'
    newest = (audit.newest_first())[0]
    assert 'no before-images kept (--no-backup)' in newest.reason
