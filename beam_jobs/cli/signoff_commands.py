"""`beam-jobs request | requests | approve | reject | withdraw | audit | plan`: the
team's sign-off, on the records every machine reads (the shared records when
`records_project` is set). Who acts is this machine's user."""

from __future__ import annotations

import os
import sys

from beam_jobs import config
from beam_jobs import identity
from beam_jobs import readable
from beam_jobs import target as target_lib
from beam_jobs.cli import common
from beam_jobs.lifecycle import approval_signatures as signatures
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import audit as audit_lib
from beam_jobs.records import requests as request_records
from beam_jobs.rehearsal import release_plan
from beam_jobs.rehearsal import signoff



def add_parsers(commands, parent) -> None:
    request = commands.add_parser(
        'request', parents=[parent], help='ask for a job to be rehearsed',
        description='Record a request to rehearse JOB, for the server jobs admin: '
        'its verify jobs, its expected output (the file is read now and travels '
        'with the request), its params, a note and a link. Prints `Request ID: ID`.')
    request.add_argument('job')
    request.add_argument('--verify', nargs='+', default=[], metavar='JOB')
    request.add_argument('--expect', default=None, metavar='FILE')
    request.add_argument('--param', action='append', default=[], metavar='KEY=VALUE')
    request.add_argument('--note', default=None, help='what the admin should know')
    request.add_argument('--link', default=None, metavar='URL',
                         help='the pull request or ticket')
    request.add_argument('--follows', nargs='+', default=[], metavar='JOB',
                         help='jobs that must have run in production first (the '
                         'gate refuses this one until they have)')
    request.set_defaults(handler=cmd_request)
    _add_plan_and_requests(commands, parent)
    _add_decisions(commands, parent)


def _add_plan_and_requests(commands, parent) -> None:
    plan = commands.add_parser(
        'plan', parents=[parent], help='the release plan: jobs in order, the gate\'s verdict now',
        description='Every job with a request or a passed rehearsal, each after the '
        'jobs it follows, with what the production gate would decide now against '
        'PROJECT: may run, or why not (unrehearsed, unapproved, not covered, waits '
        'for a job before it), until when its approval holds, and what to do next.')
    plan.add_argument('--project', default=None,
                      help='the production project (default: the `project` setting)')
    plan.add_argument('--target-namespace', dest='target_namespace', default=None,
                      metavar='NS', help='the namespace of production data, if not the default')
    plan.set_defaults(handler=cmd_plan)

    listed = commands.add_parser('requests', parents=[parent],
                                 help='rehearsal requests, oldest first, with their state')
    listed.add_argument('--job', default=None)
    listed.add_argument('--limit', type=int, default=None)
    listed.set_defaults(handler=cmd_requests)


def _add_decisions(commands, parent) -> None:
    """approve, reject, withdraw, and the audit of the gate's decisions."""
    approve = commands.add_parser('approve', parents=[parent],
                                  help='approve a passed rehearsal (as yourself)')
    approve.add_argument('rehearsal_id')
    approve.add_argument('--note', default=None, help='why (recorded)')
    approve.add_argument('--project', default=None,
                         help='the project the job may run against (required, and '
                         'signed, when `allowed_signers` is set)')
    approve.add_argument('--target-namespace', default=None, metavar='NAMESPACE',
                         help='the namespace it may run against (default: the default '
                         'namespace)')
    approve.add_argument('--user', default=None, help='your name: recorded as this '
                         'machine\'s user, which it must match if given')
    approve.set_defaults(handler=cmd_approve)

    reject = commands.add_parser('reject', parents=[parent],
                                 help='reject a request, with a note for its author')
    reject.add_argument('request_id')
    reject.add_argument('--note', required=True)
    reject.set_defaults(handler=cmd_reject)

    withdraw = commands.add_parser('withdraw', parents=[parent],
                                   help='withdraw the approval of a rehearsal')
    withdraw.add_argument('rehearsal_id')
    withdraw.add_argument('--reason', required=True)
    withdraw.set_defaults(handler=cmd_withdraw)

    audit = commands.add_parser('audit', parents=[parent],
                                help='every decision of the production gate, newest first')
    audit.add_argument('--job', default=None)
    audit.add_argument('--limit', type=int, default=100)
    audit.add_argument('--verify', action='store_true',
                       help='check the chain: name the first entry removed or changed')
    audit.set_defaults(handler=cmd_audit)


def _target(args):
    return record_stores.signoff_target(args.namespace)


def _me(given=None) -> str:
    user = identity.machine_user()
    if given and given != user:
        raise common.UsageError(f'Approvals are recorded under the name of this '
                                f'machine\'s user, {user}, not {given}: sign off as '
                                'yourself.')
    return user


def cmd_request(args) -> int:
    registry = common.registry(args)
    record = signoff.request(
        _target(args), registry.get(args.job),
        verify=[registry.get(name) for name in args.verify], expect_file=args.expect,
        params=common.parse_params(args.param), note=args.note, link=args.link,
        follows=[registry.get(name).__name__ for name in args.follows])
    print(f'Request ID: {record.request_id}')
    print(f'{record.job_name} is waiting to be rehearsed; the admin runs `beam-jobs '
          f'rehearse --request {record.request_id} --export PATH`.')
    return common.EXIT_OK


def cmd_requests(args) -> int:
    records = request_records.RequestStore(_target(args)).oldest_first(args.limit, args.job)
    common.print_table(
        ('REQUEST ID', 'JOB', 'AGE', 'BY', 'STATE', 'REHEARSALS'),
        [(r.request_id, r.job_name, readable.ago(r.created_msec), r.requested_by or '-',
          r.state_text, ', '.join(item['rehearsal_id'] for item in r.rehearsals) or '-')
         for r in records],
        '(no requests: `beam-jobs request JOB --verify JOB --expect FILE`)')
    return common.EXIT_OK


def cmd_approve(args) -> int:
    user = _me(args.user)
    record = signoff.approve(_target(args), args.rehearsal_id, user, args.note,
                             project=args.project, namespace=args.target_namespace)
    signed = record.approvals[-1].get('signature')
    print(f'Rehearsal {record.rehearsal_id} of {record.job_name} approved by {user}'
          f'{" (signed)" if signed else ""}: {record.job_name}, as rehearsed (its code '
          f'and params), may now run in production'
          f'{" against " + args.project if signed else ""}.')
    return common.EXIT_OK


def cmd_reject(args) -> int:
    record = signoff.reject(_target(args), args.request_id, _me(), args.note)
    print(f'Request {record.request_id} rejected by {record.rejected["by"]}.')
    return common.EXIT_OK


def cmd_withdraw(args) -> int:
    record = signoff.withdraw(_target(args), args.rehearsal_id, _me(), args.reason)
    newest = max(a['withdrawn']['at_msec'] for a in record.approvals if a.get('withdrawn'))
    which = ', '.join(f'by {a["user"]} (given {readable.when(a["at_msec"])})'
                      for a in record.approvals
                      if (a.get('withdrawn') or {}).get('at_msec') == newest)
    print(f'Withdrawn: the approval {which} of rehearsal {record.rehearsal_id}; '
          f'{record.job_name} may no longer run in production on it.', file=sys.stdout)
    return common.EXIT_OK


def cmd_plan(args) -> int:
    project = args.project or config.get('project')
    # Where a production run from here would read and write (as `run` decides).
    namespace = (args.target_namespace or args.namespace
                 or os.environ.get(target_lib.NAMESPACE_ENV) or None)
    plan = release_plan.build(_target(args), common.registry(args).get,
                              record_stores.production_runs_of(project, namespace),
                              project, namespace)
    print(f'The release plan for production {project or "(any project)"}'
          f'{", namespace " + namespace if namespace else ""}, '
          'as the gate decides now:')
    common.print_table(
        ('#', 'JOB', 'GATE NOW', 'APPROVAL HOLDS', 'FOLLOWS', 'NEXT'),
        [(str(p.order), p.job_name,
          f'ran ({p.ran["run_id"]})' if p.ran else p.verdict.state,
          readable.until(p.verdict.expires_msec) if p.verdict.may_run or p.ran else '-',
          ', '.join(p.follows) or '-', '-' if p.ran else p.verdict.next_step)
         for p in plan],
        '(nothing to release: no requests, no passed rehearsals)')
    for planned in plan:
        if not planned.verdict.may_run and not planned.ran:
            print(f'  {planned.order}. {planned.verdict.sentence}')
    return common.EXIT_OK


def cmd_audit(args) -> int:
    if args.verify:
        signer = signatures.decision_signer if signatures.signed_mode() else None
        problem = audit_lib.AuditStore(_target(args)).verify(signer)
        if problem:
            print(problem, file=sys.stderr)
            return common.EXIT_USAGE
        print('The audit trail is whole: no entry removed or changed'
              f'{", each signature verified" if signer else ""}.')
        return common.EXIT_OK
    decisions = audit_lib.AuditStore(_target(args)).newest_first(args.limit, args.job)
    common.print_table(
        ('WHEN', 'JOB', 'DECISION', 'BY', 'WHERE', 'REHEARSAL / REASON'),
        [(readable.when(d.at_msec), d.job_name, d.decision, d.user or '-',
          f'{d.runner or "-"} {d.project or ""}'.strip(),
          (f'{d.rehearsal_id} (approved by {", ".join(d.approved_by)})'
           if d.decision == audit_lib.APPROVED else d.reason or '-'))
         for d in decisions],
        '(no gate decisions yet: the gate decides for production runs)')
    return common.EXIT_OK
