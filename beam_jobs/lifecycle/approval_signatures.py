"""Signed approvals: what an approver signs, and what the gate checks of it.

With `allowed_signers` set (a file in the project's repository, in the format
of git's gpg.ssh.allowedSignersFile: one `PRINCIPAL KEY` a line), an approval
counts only with a signature, by the approver's own key, over a statement of
exactly what was approved: the rehearsal and its verdict, the job's
fingerprint, its params, the target it may run against (project, namespace,
database), the export's timestamp, who approved it and when. The statement
is kept beside the signature, so the gate can name the field that differs
from the record or the run. Without `allowed_signers` approvals are unsigned:
whoever can write to the records can write one (README: "Unsigned mode").
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Optional

from beam_jobs import config
from beam_jobs import signing
from beam_jobs.records.rehearsals import RehearsalRecord
from beam_jobs.records.store import now_msec

# Fields the statement copies from the rehearsal record: a record edited
# afterwards no longer matches what was signed.
_FROM_RECORD = ('rehearsal_id', 'job_name', 'verdict', 'fingerprint', 'params',
                'export_timestamp', 'rehearsed_by')


def _path_setting(name: str) -> Optional[str]:
    """A file setting, relative to the project's folder (pyproject.toml's)."""
    value = config.get(name)
    if not value:
        return None
    path = os.path.expanduser(str(value))
    folder = config.project_dir()
    return path if os.path.isabs(path) or folder is None else str(folder / path)


def allowed_signers() -> Optional[str]:
    return _path_setting('allowed_signers')


def signed_mode() -> bool:
    return allowed_signers() is not None


def _signers_file() -> str:
    """allowed_signers, in signed mode (where every signature is checked)."""
    path = allowed_signers()
    if path is None:
        raise signing.SignatureError('no allowed_signers is set to check it against')
    return path


def _flag(name: str, default: bool) -> bool:
    value = config.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() not in ('false', '0', 'no', 'off')
    return bool(value)


def require_two_people() -> bool:
    """Default: on when approvals are signed."""
    return _flag('require_two_people', signed_mode())


def console_approvals() -> bool:
    """Whether a console token may approve in signed mode (never signed)."""
    return _flag('console_approvals', False)


def principals() -> Optional[list[str]]:
    """The approvers named in allowed_signers (None: not in signed mode)."""
    path = allowed_signers()
    if path is None:
        return None
    names: list[str] = []
    for line in _read_allowed(path).splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        # A key limited to other namespaces (a release machine's, for gate
        # decisions) signs no approval: its principal is no approver.
        limited = re.search(r'namespaces="([^"]*)"', line)
        if limited and signing.NAMESPACE not in limited.group(1).split(','):
            continue
        names.extend(name for name in line.split()[0].split(',') if name)
    return names


def _read_allowed(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as error:
        raise signing.SignatureError(
            f'allowed_signers {path} cannot be read ({error.strerror}): check the '
            '`allowed_signers` setting.') from error


def statement(record: RehearsalRecord, user: str, *, project: Optional[str],
              namespace: Optional[str], requested_by: Optional[str] = None,
              database: Optional[str] = None) -> str:
    """The canonical text an approver signs: sorted JSON, one field a line."""
    fields = {
        'statement': 'beam-jobs approve', 'rehearsal_id': record.rehearsal_id,
        'job_name': record.job_name, 'verdict': record.verdict,
        'fingerprint': record.fingerprint, 'params': record.params,
        'export_timestamp': (record.export or {}).get('timestamp'),
        'rehearsed_by': record.rehearsed_by, 'requested_by': requested_by,
        'target': {'project': project, 'namespace': namespace or '',
                   'database': database or ''},
        'user': user, 'at_msec': now_msec()}
    return json.dumps(fields, sort_keys=True, indent=1) + '\n'


def sign(text: str) -> str:
    return signing.sign(text, _path_setting('signing_key') or '')


def check_own(text: str, signature: str, user: str) -> None:
    """Refuse, before anything is written, a signature the gate would refuse:
    a key not in allowed_signers, revoked, or another approver's."""
    try:
        principal = signing.signer(text, signature, _signers_file(),
                                   _path_setting('revoked_keys'))
    except signing.SignatureError as error:
        raise signing.SignatureError(
            f'Your approval would not count: {error} (signing_key '
            f'{_path_setting("signing_key")}); sign with your own key listed there.') from None
    if principal != user:
        raise signing.SignatureError(
            f'signing_key is {principal}\'s key in allowed_signers, not {user}\'s: '
            'sign with your own key.')


def sign_decision(digest: str) -> Optional[str]:
    """The deciding machine's signature of a gate decision's digest, when it
    has a key (`signing_key`); None without one."""
    key = _path_setting('signing_key')
    return signing.sign(digest + '\n', key, signing.GATE_NAMESPACE) if key else None


def decision_signer(digest: str, signature: str) -> str:
    """The principal whose key signed a gate decision's digest (listed in
    allowed_signers with namespaces="beam-jobs-gate"); SignatureError if none."""
    if not signed_mode():
        raise signing.SignatureError('no allowed_signers is set to check it against')
    return signing.signer(digest + '\n', signature, _signers_file(),
                          _path_setting('revoked_keys'), signing.GATE_NAMESPACE)


def _record_value(record: RehearsalRecord, field: str) -> Any:
    if field == 'export_timestamp':
        return (record.export or {}).get('timestamp')
    if field == 'fingerprint':
        return record.fingerprint
    return getattr(record, field)


def signer_of(record: RehearsalRecord,
              approval: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Who signed `approval` of `record`, and what they signed; SignatureError
    with the phrase naming what failed (no signature, unknown key, revoked
    key, a signature or field that does not match the record)."""
    text = approval.get('statement') or ''
    principal = signing.signer(text, approval.get('signature') or '', _signers_file(),
                               _path_setting('revoked_keys'))
    signed = json.loads(text)
    if principal != approval.get('user') or signed.get('user') != principal:
        raise signing.SignatureError(f'it is recorded as {approval.get("user")}\'s but '
                                     f'signed by {principal}')
    for field in _FROM_RECORD:
        if signed.get(field) != _record_value(record, field):
            raise signing.SignatureError(f'its {field.replace("_", " ")} differs from '
                                         f'what {principal} signed')
    if require_two_people():
        for field, what in (('requested_by', 'request'), ('rehearsed_by', 'rehearsal')):
            if signed.get(field) == principal:
                raise signing.SignatureError(f'{principal} approved their own {what} '
                                             '(require_two_people)')
    return principal, signed


def covers(record: RehearsalRecord, approval: dict[str, Any], project: Optional[str],
           namespace: Optional[str]) -> Optional[str]:
    """None when the signed approval covers a run against this target, else
    the phrase saying why not."""
    try:
        principal, signed = signer_of(record, approval)
    except signing.SignatureError as error:
        return f'the approval by {approval.get("user")} is refused: {error}'
    target = signed.get('target') or {}
    if target.get('project') != project:
        return (f'{principal} approved it for project {target.get("project")}, '
                f'not {project}')
    if target.get('namespace', '') != (namespace or ''):
        return (f'{principal} approved it for namespace {target.get("namespace")!r}, '
                f'not {namespace or ""!r}')
    if (target.get('database') or '') != (approval.get('database') or ''):
        return (f'the approval by {principal} says database '
                f'{approval.get("database") or "(default)"} but was signed for '
                f'{target.get("database") or "(default)"}')
    return None


def badge(record: RehearsalRecord, approval: dict[str, Any]) -> dict[str, str]:
    """What the console shows of an approval's signature."""
    if not signed_mode():
        return {'state': 'unsigned', 'text': 'unsigned (no allowed_signers)'}
    if approval.get('via') == 'console':
        return {'state': 'console', 'text': 'console approval (not signed)'}
    try:
        principal, signed = signer_of(record, approval)
    except signing.SignatureError as error:
        return {'state': 'invalid', 'text': f'does not verify: {error}'}
    target = signed.get('target') or {}
    database = f' (database {target["database"]})' if target.get('database') else ''
    return {'state': 'verified', 'text': f'signed by {principal} for '
            f'{target.get("project")}/{target.get("namespace") or "(default)"}{database}'}
