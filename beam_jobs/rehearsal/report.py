"""A rehearsal record as the Markdown report a coordinator reads and signs."""

from __future__ import annotations

from typing import Optional

from beam_jobs import readable
from beam_jobs.lifecycle import approval_signatures as signatures
from beam_jobs.records.rehearsals import PASSED, RehearsalRecord

MAX_LISTED = 50


def _counts(by_kind: dict) -> str:
    return ', '.join(f'{kind} {count:,}' for kind, count in sorted(by_kind.items())) or 'none'


def _listed(lines: list, bullet: str = '- ') -> list[str]:
    shown = [f'{bullet}`{line}`' for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        shown.append(f'{bullet}… and {len(lines) - MAX_LISTED} more')
    return shown


def _measured(measured: dict) -> list[str]:
    """What the job's run measured (larger runs are estimated from it), and
    on Dataflow its estimate beside what it used."""
    lines = []
    if measured.get('cpu_seconds'):
        per = measured['cpu_seconds'] / measured['entities'] * 1000
        lines.append(f'- CPU of the job\'s run: {measured["cpu_seconds"]:.1f} s for '
                     f'{measured["entities"]:,} entities ({per:.3f} ms each; '
                     '`beam-jobs estimate` scales larger runs from it)')
    if measured.get('estimate'):
        lines.append(f'- Estimated before it was submitted: {measured["estimate"]}')
    if measured.get('beside_actuals'):
        lines.append(f'- Estimate vs actual: {measured["beside_actuals"]}')
    return lines


def markdown(record: RehearsalRecord) -> str:
    """The rehearsal's report: what ran, its checks, writes and durations,
    and its sign-off."""
    lines = (_head(record) + _checks(record) + _writes_and_durations(record)
             + _sign_off(record))
    return '\n'.join(lines) + '\n'


def _head(record: RehearsalRecord) -> list[str]:
    version = record.code_version
    export = record.export
    lines = [
        f'# Rehearsal of {record.job_name}: {record.verdict.upper()}',
        '',
        f'- Rehearsal ID: `{record.rehearsal_id}` ({readable.when(record.created_msec)})',
        f'- Code: commit `{version.get("commit") or "none (not a git checkout)"}`'
        f'{" with local changes to the job" if version.get("dirty") else ""}; '
        f'`{version.get("source_file")}` sha256 `{version.get("source_sha256")}`',
        f'- Export: `{export.get("path")}`'
        + (f', the after state of `{export["after_state_of"]}`' if export.get('after_state_of') else '')
        + f' (export taken {export.get("timestamp")}; {_counts(export.get("entities") or {})})',
        f'- Params: `{record.params}`; shard count {record.shard_count}',
        *([f'- Covers: the job class\'s source and the project modules it imports: '
           + ', '.join(f'`{name}`' for name in sorted(record.fingerprint.get('modules') or {}))
           + f' (framework {record.fingerprint.get("framework")})']
          if record.fingerprint else []),
        *([f'- Request: `{record.request_id}`'] if record.request_id else []),
        *([f'- Rehearsed by {record.rehearsed_by} on {record.machine}']
          if record.rehearsed_by else []),
        *([f'- Runs on: {record.runner}'] if record.runner else []),
        f'- Job run: `{record.run_id or "-"}`',
        f'- After state: `{record.after_state or "-"}`',
    ]
    if record.is_running:
        waiting = record.in_flight_run
        lines.append(f'- Running: waiting for run `{waiting}`' if waiting else
                     '- Running: its next step starts when it is next read')
    return lines


def _checks(record: RehearsalRecord) -> list[str]:
    lines: list[str] = []
    if record.reasons:
        lines += ['', '## Why it failed', ''] + [f'- {reason}' for reason in record.reasons]
    lines += ['', '## Checks', '']
    lines.append(f'- The job\'s run: {"no" if not record.failed_items else len(record.failed_items)} '
                 f'failed item(s)')
    for verify in record.verify:
        outcome = ('running' if verify['passed'] is None else 'passed' if verify['passed']
                   else 'FAILED: ' + (verify['reason'] or ''))
        lines.append(f'- Verify `{verify["job"]}` (run `{verify["run_id"] or "-"}`): {outcome}')
    if record.expect:
        lines.append(f'- Expected output `{record.expect.get("file")}`: '
                     f'{"passed" if record.expect["passed"] else "FAILED"}')
        if record.expect.get('missing'):
            lines += ['  - missing:'] + _listed(record.expect['missing'], '    - ')
        if record.expect.get('unexpected'):
            lines += ['  - unexpected:'] + _listed(record.expect['unexpected'], '    - ')
    if record.failed_items:
        lines += ['', '## Failed items', '']
        lines += [f'- {item["kind"] or item["step"]} `{item["key"]}`: {item["reason"]}'
                  for item in record.failed_items[:MAX_LISTED]]
        if len(record.failed_items) > MAX_LISTED:
            lines.append(f'- … and {len(record.failed_items) - MAX_LISTED} more '
                         f'(`beam-jobs output {record.run_id}`)')
    return lines


def _writes_and_durations(record: RehearsalRecord) -> list[str]:
    lines: list[str] = []
    writes = record.writes or {}
    durations = record.durations or {}
    lines += ['', '## Writes (into the after state)', '',
              f'- put: {_counts(writes.get("put") or {})}',
              f'- delete: {_counts(writes.get("delete") or {})}',
              '', '## Durations', '',
              f'- job: {durations.get("job")} s',
              *(f'- verify {name}: {seconds} s'
                for name, seconds in (durations.get('verify') or {}).items()),
              f'- whole rehearsal: {durations.get("total")} s',
              *_measured(record.measured or {})]
    if record.coordinator_notes:
        lines += ['', '## Notes for the release coordinator', '',
                  record.coordinator_notes.strip()]
    return lines


def _sign_off(record: RehearsalRecord) -> list[str]:
    lines: list[str] = []
    lines += ['', '## Sign-off', '']
    for approval in record.approvals:
        named = ('' if approval.get('approvers', 'unknown') is not None
                 else ' (no approvers were named: anyone could approve)')
        badge = signatures.badge(record, approval)
        signed = f' [{badge["text"]}]' if badge['state'] != 'unsigned' else ''
        lines.append(f'- Approved by {approval["user"]} on '
                     f'{readable.when(approval["at_msec"])}{named}{signed}'
                     f'{": " + approval["note"] if approval.get("note") else ""}')
        withdrawn = approval.get('withdrawn')
        if withdrawn:
            lines.append(f'  - withdrawn by {withdrawn["by"]} on '
                         f'{readable.when(withdrawn["at_msec"])}: {withdrawn["reason"]}')
    if record.verdict != PASSED:
        lines.append('- A failed rehearsal cannot be approved: fix the cause and '
                     'rehearse again.')
    elif not record.standing_approvals:
        lines.append(f'- Not approved: an approver runs `beam-jobs approve '
                     f'{record.rehearsal_id} --note TEXT`')
    return lines
