"""The audit trail as a hash chain (records/audit.py): a changed entry, a
removed one, or the newest ones cut off are each named by verify()."""

from beam_jobs.records import audit as audit_lib
from beam_jobs.target import client


def _chain(target, count=3):
    audit = audit_lib.AuditStore(target)
    entries = [audit.append('ShoutJob', audit_lib.REFUSED, user='rel', reason=f'no {n}')
               for n in range(count)]
    assert [e.seq for e in entries] == list(range(1, count + 1))
    assert audit.verify() is None
    return audit, entries


def test_a_changed_entry_is_named(datastore_target):
    audit, entries = _chain(datastore_target)
    entries[1].reason = 'approved after all'
    client(datastore_target).put(entries[1].to_entity(client(datastore_target)))
    assert audit.verify() == f'Audit entry 2, {entries[1].decision_id}, was changed.'
    # Its digest recomputed too: the entry after it still names it.
    entries[1].digest = entries[1].computed_digest()
    client(datastore_target).put(entries[1].to_entity(client(datastore_target)))
    assert audit.verify().startswith(f'Audit entry 2, {entries[1].decision_id}, was '
                                     'changed (the entry after it')


def test_the_newest_entries_cut_off_are_named(datastore_target):
    audit, entries = _chain(datastore_target)
    datastore = client(datastore_target)
    datastore.delete(datastore.key(audit_lib.DECISION_KIND, entries[2].decision_id))
    assert audit.verify() == (f'Audit entry 3 was removed (the newest left is '
                              f'entry 2, {entries[1].decision_id}).')
