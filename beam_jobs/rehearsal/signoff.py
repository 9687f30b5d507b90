"""The team's sign-off: requests, approvals, rejections, withdrawals.

The production guide's process, on the records every machine reads
(`record_stores.signoff_target`: the shared records when `records_project` is
set):

1. The author asks for a rehearsal: `request` (the job, its verify jobs, the
   expected output, params, a note, a link).
2. The server jobs admin rehearses it on a copy of production
   (`rehearse --request ID`), which links the rehearsal to the request.
3. A named approver (`approvers`; anyone while it is unset, and the record
   says so) approves the passed rehearsal, or rejects the request with a
   note; an approval can be withdrawn, with who and why.

Who acts is the person signed in (the console) or the machine's user (the
CLI): never a name typed in. With `allowed_signers` set, the CLI signs each
approval, rejection and withdrawal with the approver's SSH key
(lifecycle/approval_signatures.py) before anything is written, and nobody
approves their own request or rehearsal (`require_two_people`); the console
approves only where `console_approvals = true`, marked as made there.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

from beam_jobs import identity
from beam_jobs import job_class as job_class_lib
from beam_jobs import refusals
from beam_jobs.lifecycle import approval_signatures as signatures
from beam_jobs.lifecycle import gate as gate_lib
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import requests as request_records
from beam_jobs.records.store import now_msec
from beam_jobs.rehearsal import expect as expect_lib
from beam_jobs.target import Target, run_database


class NotAnApproverError(refusals.NotAllowed):
    """Someone not among the named approvers tried to sign off."""


def check_approver(user: str, what: str) -> Optional[list[str]]:
    """The named approvers, if `user` is one of them (or none are named);
    otherwise NotAnApproverError, naming them."""
    names = gate_lib.approvers()
    if names is not None and user not in names:
        raise NotAnApproverError(
            f'{user} may not {what}: only the named approvers ({", ".join(names)}) '
            'may (the `approvers` setting); ask one of them.')
    return names


def request(target: Target, job: type, *, verify: Sequence[type] = (),
            expect_file: Optional[str] = None, params: Optional[Mapping[str, Any]] = None,
            note: Optional[str] = None, link: Optional[str] = None,
            user: Optional[str] = None,
            follows: Sequence[str] = ()) -> request_records.RequestRecord:
    """Record what an author asks to have rehearsed. The expected output file
    is read now and travels in the request (checked as a rehearsal will)."""
    job_class_lib.validate(job)
    for check in verify:
        job_class_lib.validate(check)
    params = dict(params or {})
    job_class_lib.check_params(params)
    expect = {}
    if expect_file:
        text = expect_lib.read(expect_file)
        expect_lib.parse_text(text, expect_file)
        expect = {'file': expect_file, 'text': text}
    return request_records.RequestStore(target).create(
        job_class_lib.job_name(job), requested_by=user or identity.machine_user(),
        machine=identity.machine(), verify=[job_class_lib.job_name(v) for v in verify],
        expect=expect, params=params, note=note, link=link,
        follows=[name for name in follows if name])


def rehearsed(target: Target, record: rehearsal_records.RehearsalRecord) -> None:
    """Link a finished rehearsal to the request it fulfils."""
    if not record.request_id:
        return
    entry = {'rehearsal_id': record.rehearsal_id, 'verdict': record.verdict,
             'at_msec': now_msec(), 'by': record.rehearsed_by}
    request_records.RequestStore(target).change(
        record.request_id, lambda found: found.rehearsals.append(entry))


def _check_two_people(record: rehearsal_records.RehearsalRecord, user: str,
                      requested_by: Optional[str]) -> None:
    if not signatures.require_two_people():
        return
    if user == requested_by:
        raise rehearsal_records.ApprovalError(
            f'{user} requested this job, so may not approve it (require_two_people): '
            'ask another approver.')
    if user == record.rehearsed_by:
        raise rehearsal_records.ApprovalError(
            f'{user} ran rehearsal {record.rehearsal_id}, so may not approve it '
            '(require_two_people): ask another approver.')


def approve(target: Target, rehearsal_id: str, user: str, note: Optional[str] = None, *,
            project: Optional[str] = None, namespace: Optional[str] = None,
            via: str = 'cli', database: Optional[str] = None,
            ) -> rehearsal_records.RehearsalRecord:
    """Approve a passed rehearsal for runs against `project` and `namespace`
    in `database` (default: the command's, target.run_database; the approval
    names it, and passes no run against another), signed in signed mode
    (`via` 'cli'; or 'console' where that is allowed)."""
    database = database or run_database() or ''

    names = check_approver(user, 'approve rehearsals')
    store = rehearsal_records.RehearsalStore(target)
    found = store.get(rehearsal_id)
    requested_by = (request_records.RequestStore(target).get(found.request_id).requested_by
                    if found.request_id else None)
    _check_two_people(found, user, requested_by)
    facts: dict[str, Any] = {'approvers': names, 'machine': identity.machine(), 'via': via,
                             'database': database}
    if signatures.signed_mode():
        if via == 'console' and not signatures.console_approvals():
            raise NotAnApproverError(
                'Approvals here are signed with the approver\'s SSH key, which a browser '
                f'does not hold: run `beam-jobs approve {rehearsal_id} --project PROJECT` '
                'on your machine (or set console_approvals = true).')
        if via == 'cli':
            if not project:
                raise rehearsal_records.ApprovalError(
                    'Name the project the job may run against: --project PROJECT '
                    '(the approval is signed for it alone).')
            text = signatures.statement(found, user, project=project, namespace=namespace,
                                        requested_by=requested_by, database=database)
            # Signed before anything is written: a key that cannot sign leaves no record.
            signature = signatures.sign(text)
            signatures.check_own(text, signature, user)
            facts.update(statement=text, signature=signature,
                         target={'project': project, 'namespace': namespace or '',
                                 'database': database})
    record = store.approve(rehearsal_id, user, note, **facts)
    if record.request_id:
        def approve_request(found: request_records.RequestRecord) -> None:
            if user not in found.approved_by:
                found.approved_by.append(user)
        request_records.RequestStore(target).change(record.request_id, approve_request)
    return record


def _signed(action: str, user: str, via: str, **fields: Any) -> dict:
    """A withdrawal's or rejection's statement and signature (signed mode, on
    the command line), kept with it so anyone can check who made it. Either
    only takes an approval away, so the console may do it unsigned."""
    if via == 'console':
        return {'via': via}
    if not signatures.signed_mode():
        return {}
    text = json.dumps({'statement': f'beam-jobs {action}', 'user': user,
                       'at_msec': now_msec(), **fields}, sort_keys=True, indent=1) + '\n'
    return {'statement': text, 'signature': signatures.sign(text)}


def withdraw(target: Target, rehearsal_id: str, user: str, reason: str,
             via: str = 'cli') -> rehearsal_records.RehearsalRecord:
    check_approver(user, 'withdraw approvals')
    if not reason or not reason.strip():
        raise rehearsal_records.ApprovalError(
            'Say why the approval is withdrawn: --reason TEXT.')
    signed = _signed('withdraw', user, via, rehearsal_id=rehearsal_id, reason=reason.strip())
    record = rehearsal_records.RehearsalStore(target).withdraw(rehearsal_id, user,
                                                               reason.strip(), **signed)
    if record.request_id:
        def unapprove(found: request_records.RequestRecord) -> None:
            found.approved_by = []
        request_records.RequestStore(target).change(record.request_id, unapprove)
    return record


def reject(target: Target, request_id: str, user: str, note: str,
           via: str = 'cli') -> request_records.RequestRecord:
    check_approver(user, 'reject requests')
    if not note or not note.strip():
        raise rehearsal_records.ApprovalError(
            'A rejection needs a note for the author: --note TEXT.')

    signed = _signed('reject', user, via, request_id=request_id, note=note.strip())

    def reject_it(found: request_records.RequestRecord) -> None:
        if found.approved_by:
            raise rehearsal_records.ApprovalError(
                f'Request {request_id} is approved: withdraw the approval '
                '(`beam-jobs withdraw REHEARSAL_ID --reason TEXT`) first.')
        found.rejected = {'by': user, 'note': note.strip(), 'at_msec': now_msec(), **signed}
    return request_records.RequestStore(target).change(request_id, reject_it)
