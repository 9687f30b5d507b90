"""What a Dataflow run will cost and take, worked out before it is submitted,
and what its reported resources cost while it runs (its budget).

Batch cost grows linearly with the entities read (Google's own advice for a
tuned batch job), so the CPU per entity a rehearsal (or, lacking one, a run)
measured predicts a larger run. No measurement, no figure: the estimate then
carries a warning instead of a made-up number. The prices come from the
dated table in prices.py, and are kept with the estimate on the run record.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping, Optional, Union

from beam_jobs import counters as counters_lib
from beam_jobs import options as options_lib
from beam_jobs import readable
from beam_jobs import refusals
from beam_jobs.lifecycle import prices
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs

# Settings (pyproject.toml [tool.beam-jobs] or BEAM_JOBS_<NAME>).
VCPU_PRICE_SETTING = 'vcpu_hour_usd'
BUDGET_SETTING = 'max_cost_usd'
# Memory that comes with each vCPU of the machine families Dataflow offers
# (GB); a machine type that names none is an n1-standard, Dataflow's default.
_MEMORY_GB_PER_VCPU = {'highmem': 6.5, 'highcpu': 0.9, 'standard': 3.75}
NO_MEASUREMENT = ('No rehearsal or run of {job} recorded its CPU time, so there '
                  'is no cost or time figure: rehearse it first (beam-jobs '
                  'rehearse {job} --export PATH) and estimate again.')


class GuardrailError(refusals.Refused):
    """A budget or worker cap that cannot cap anything."""


def positive(name: str, value: Union[str, float, None]) -> float:
    """The value as a positive number, or a one-sentence refusal."""
    try:
        number = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        number = 0.0
    if not number > 0 or number != number or number == float('inf'):
        raise GuardrailError(f'{name} must be a positive number, not {value!r}: '
                             'pass a value above 0.')
    return number


# What was measured.

@dataclasses.dataclass(frozen=True)
class Measurement:
    """CPU seconds a run of the job used for the entities it read."""

    cpu_seconds: float
    entities: int
    measured_by: str          # 'rehearsal ID (local run RUN_ID)', 'local run RUN_ID', …


def measured_by_run(run: runs.RunRecord) -> Optional[dict[str, Any]]:
    """What a finished run measured (`{'run_id', 'runner', 'cpu_seconds',
    'entities'}`): a local run's process CPU, a Dataflow job's vCPU time;
    None when it recorded no CPU or read nothing."""
    usage = run.usage or {}
    cpu = usage.get('cpu_seconds') if run.is_local else usage.get('vcpu_seconds')
    entities = sum(counters_lib.entities_read(run.counters).values())
    if not cpu or not entities or run.status != runs.COMPLETED:
        return None
    return {'run_id': run.run_id, 'runner': run.runner, 'cpu_seconds': float(cpu),
            'entities': int(entities)}


def _where(measured: Mapping[str, Any]) -> str:
    local = (measured.get('runner') or options_lib.LOCAL_RUNNER) in options_lib.LOCAL_RUNNERS
    return f'{"local" if local else "Dataflow"} run {measured["run_id"]}'


def last_measurement(job_name: str, rehearsals: rehearsal_records.RehearsalStore,
                     run_store: Optional[runs.RunStore] = None,
                     limit: int = 20) -> Optional[Measurement]:
    """The job's last rehearsal that measured its CPU, or else its last
    completed run that did (said so): None when neither exists."""
    for rehearsal in rehearsals.recent(limit, job_name):
        measured = rehearsal.measured or {}
        if measured.get('cpu_seconds') and measured.get('entities'):
            return Measurement(measured['cpu_seconds'], measured['entities'],
                               f'rehearsal {rehearsal.rehearsal_id} ({_where(measured)})')
    for run in (run_store.recent(limit, job_name) if run_store else []):
        measured = measured_by_run(run) or {}
        if measured:
            return Measurement(measured['cpu_seconds'], measured['entities'],
                               f'{_where(measured)} (no rehearsal measured it)')
    return None


# The estimate.

def vcpus_per_worker(machine_type: Optional[str]) -> int:
    """n1-standard-4 → 4; Dataflow's default batch worker has 1 vCPU."""
    found = re.search(r'-(\d+)$', machine_type or '')
    return int(found.group(1)) if found else 1


def memory_gb_per_vcpu(machine_type: Optional[str]) -> float:
    family = next((name for name in _MEMORY_GB_PER_VCPU if name in (machine_type or '')),
                  'standard')
    return _MEMORY_GB_PER_VCPU[family]


@dataclasses.dataclass(frozen=True)
class Estimate:
    job_name: str
    entities: Optional[int]
    cpu_seconds_per_entity: Optional[float]
    measured_by: str
    workers: int
    machine_type: Optional[str]
    region: Optional[str]
    rates: Optional[dict[str, float]]
    vcpu_hours: Optional[float]
    wall_minutes: Optional[float]
    usd: Optional[float]
    warnings: tuple[str, ...] = ()

    def assumptions(self) -> str:
        rates = self.rates
        priced = (f'${rates["vcpu_hour"]}/vCPU-h and ${rates["memory_gb_hour"]}/GB-h '
                  f'of memory ({memory_gb_per_vcpu(self.machine_type)} GB a vCPU) '
                  f'at list rates of {prices.PRICES_AS_OF} in {self.region}, no '
                  'FlexRS discount, shuffle and disks not priced'
                  if rates else f'no price for region {self.region}')
        entities = 'an unknown number of' if self.entities is None else f'{self.entities:,}'
        return (f'{entities} entities; CPU per entity from '
                f'{self.measured_by or "nothing measured"}, cost linear in entities; '
                f'{self.workers} worker(s) of {vcpus_per_worker(self.machine_type)} '
                f'vCPU ({self.machine_type or "n1-standard-1"}) all busy, start-up '
                f'not counted; {priced}.')

    def as_record(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields['warnings'] = list(self.warnings)
        fields['assumptions'] = self.assumptions()
        fields['prices_as_of'] = prices.PRICES_AS_OF
        return fields


def estimate(job_name: str, entities: Optional[int], measurement: Optional[Measurement],
             workers: Optional[int], region: Optional[str], machine_type: Optional[str] = None,
             vcpu_hour_usd: Optional[float] = None) -> Estimate:
    """The estimate for reading `entities`, scaled from a measured run."""
    workers = int(positive('max_num_workers', workers))
    rates = prices.rates_for(region, vcpu_hour_usd)
    warnings: list[str] = []
    if rates is None:
        warnings.append(f'No list price for region {region}: set {VCPU_PRICE_SETTING} '
                        '(a USD price per vCPU-hour) to get a cost.')
    if measurement is None:
        warnings.append(NO_MEASUREMENT.format(job=job_name))
    if entities is None:
        warnings.append('How many entities the run reads is not known (the Datastore '
                        'has no __Stat_Kind__ statistics for these kinds): estimate '
                        'over an export (--export PATH) instead.')
    per_entity = (measurement.cpu_seconds / measurement.entities
                  if measurement else None)
    vcpu_hours = wall = usd = None
    if per_entity is not None and entities is not None:
        vcpu_hours = per_entity * entities / 3600
        wall = vcpu_hours * 60 / (workers * vcpus_per_worker(machine_type))
        if rates is not None:
            usd = vcpu_hours * (rates.vcpu_hour + memory_gb_per_vcpu(machine_type)
                                * rates.memory_gb_hour)
    return Estimate(job_name, entities, per_entity,
                    measurement.measured_by if measurement else '', workers,
                    machine_type, region, rates.as_dict() if rates else None,
                    vcpu_hours, wall, usd, tuple(warnings))


# How people read an estimate a record keeps (the CLI and the console alike).

def usd_text(usd: Optional[float]) -> str:
    if usd is None:
        return 'unknown'
    return f'${usd:,.2f}' if usd >= 0.1 else f'${usd:.4f}'


def figures_text(kept: Optional[dict[str, Any]]) -> Optional[str]:
    """`about 0.01234 vCPU hours, 3 min 10 s with 4 worker(s), $0.0008`."""
    if not kept:
        return None
    if kept.get('vcpu_hours') is None:
        return 'no figure (see the warnings)'
    wall = readable.duration(kept['wall_minutes'] * 60)
    return (f'about {kept["vcpu_hours"]:.4g} vCPU hours, {wall} with '
            f'{kept["workers"]} worker(s), {usd_text(kept.get("usd"))}')


def lines(kept: dict[str, Any]) -> list[str]:
    """The estimate as printed before a submission and by `beam-jobs estimate`."""
    entities = kept.get('entities')
    per = kept.get('cpu_seconds_per_entity')
    out = [f'Estimate for {kept["job_name"]}: {figures_text(kept)}',
           f'  entities to read: {"unknown" if entities is None else f"{entities:,}"}',
           '  CPU per entity: ' + (f'{per * 1000:.3f} ms, measured by {kept["measured_by"]}'
                                   if per is not None else 'not measured'),
           f'  assumptions: {kept["assumptions"]}']
    out += [f'  WARNING: {warning}' for warning in kept.get('warnings') or []]
    return out


def before_submitting(kept: dict[str, Any], budget: dict[str, Any]) -> list[str]:
    """What a Dataflow run will cost and take, and what caps it: said
    before anything is submitted (run, rehearse)."""
    return [*lines(kept), f'Guardrails: {guardrails_text(budget)}']


def beside_actuals(kept: Optional[dict[str, Any]],
                   usage: Optional[dict[str, Any]]) -> Optional[str]:
    """The estimate next to what the run reported: `vCPU hours 0.0123 estimated,
    0.0150 reported (+22%); cost $0.0008 estimated, $0.0010 reported`."""
    if not kept or kept.get('vcpu_hours') is None:
        return None
    usage = usage or {}
    parts = []
    actual = usage.get('vcpu_seconds')
    if actual is not None:
        actual_hours = actual / 3600
        change = (f' ({(actual_hours / kept["vcpu_hours"] - 1) * 100:+.0f}%)'
                  if kept['vcpu_hours'] else '')
        parts.append(f'vCPU hours {kept["vcpu_hours"]:.4f} estimated, '
                     f'{actual_hours:.4f} reported{change}')
    if usage.get('elapsed_seconds') is not None:
        parts.append(f'time {readable.duration(kept["wall_minutes"] * 60)} estimated, '
                     f'{readable.duration(usage["elapsed_seconds"])} elapsed')
    if kept.get('usd') is not None and usage.get('cost_usd') is not None:
        parts.append(f'cost {usd_text(kept["usd"])} estimated, '
                     f'{usd_text(usage["cost_usd"])} reported')
    return '; '.join(parts) or None


# The budget: what a run's reported resources cost so far.

def cost_of(usage: Mapping[str, Optional[float]],
            rates: Mapping[str, float]) -> Optional[float]:
    """The list price of the resources a job reported (vCPU, memory,
    shuffle); None before it reported any vCPU time."""
    vcpu_seconds = usage.get('vcpu_seconds')
    if vcpu_seconds is None:
        return None
    return (vcpu_seconds / 3600 * rates['vcpu_hour']
            + (usage.get('memory_gb_seconds') or 0) / 3600 * rates['memory_gb_hour']
            + (usage.get('shuffle_gb') or 0) * rates['shuffle_gb'])


def guardrails_text(budget: Optional[dict[str, Any]]) -> Optional[str]:
    """A Dataflow run's guardrails in one line, as its summary states them."""
    if not budget:
        return None
    said = [f'at most {budget["max_num_workers"]} workers (max_num_workers)']
    if budget.get('max_cost_usd'):
        said.append('canceled once its reported resources cost more than '
                    f'{usd_text(budget["max_cost_usd"])} (max_cost_usd)')
    else:
        said.append('no budget (--max-cost-usd cancels it past a cost)')
    if budget.get('flexrs'):
        said.append('FlexRS (COST_OPTIMIZED): Dataflow may start it up to hours '
                    'later, when capacity is spare')
    return '; '.join(said)


def over_budget(budget: Optional[dict[str, Any]], usage: dict[str, Any]) -> Optional[str]:
    """Why a run must stop now (its reported cost passed its budget), or None."""
    if not (budget or {}).get('max_cost_usd') or usage.get('cost_usd') is None:
        return None
    assert budget is not None   # it has max_cost_usd
    if usage['cost_usd'] <= budget['max_cost_usd']:
        return None
    return (f'Canceled by beam-jobs: the cost of the resources the Dataflow job '
            f'reported ({usd_text(usage["cost_usd"])} at list rates) passed its '
            f'budget, max_cost_usd = {usd_text(budget["max_cost_usd"])}. Raise '
            '--max-cost-usd (or the max_cost_usd setting) if the run needs more, '
            'then rerun it.')


def budget_left_text(budget: Optional[dict[str, Any]],
                     usage: Optional[dict[str, Any]]) -> Optional[str]:
    """`$0.42 of $1.00 left` while a run with a budget goes."""
    if not (budget or {}).get('max_cost_usd'):
        return None
    assert budget is not None   # it has max_cost_usd
    spent = (usage or {}).get('cost_usd') or 0.0
    left = max(budget['max_cost_usd'] - spent, 0.0)
    return (f'{usd_text(left)} of {usd_text(budget["max_cost_usd"])} left '
            f'({usd_text(spent)} spent, at list rates)')
