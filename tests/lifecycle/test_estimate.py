"""The estimate: its arithmetic and refusals without a run, then `beam-jobs
estimate` over the demo export after a rehearsal measured the job's CPU."""

import re

import pytest

from beam_jobs import cli, testing
from beam_jobs.export import write_export
from beam_jobs.lifecycle import estimate
from beam_jobs.lifecycle import prices
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs
from pipelines import sample_data

MIGRATION = 'ExplorationContentMigrationOneOffJob'
MEASURED = estimate.Measurement(20.0, 10_000, 'rehearsal r1 (local run x)')


def test_scales_the_measured_cpu_per_entity_to_the_run():
    # A rehearsal of 10,000 entities used 20 CPU seconds: 2 ms each.
    got = estimate.estimate('Job', 100_000, MEASURED, 4, 'us-central1')
    rates = prices.RATES['us-central1']
    assert got.cpu_seconds_per_entity == pytest.approx(0.002)
    assert got.vcpu_hours == pytest.approx(200 / 3600)
    assert got.wall_minutes == pytest.approx(200 / 60 / 4)
    assert got.usd == pytest.approx(200 / 3600 * (rates.vcpu_hour + 3.75 * rates.memory_gb_hour))
    assert not got.warnings
    assert 'rehearsal r1' in got.assumptions() and prices.PRICES_AS_OF in got.assumptions()
    # Workers with 4 vCPUs each finish four times sooner, for the same vCPU hours.
    bigger = estimate.estimate('Job', 100_000, MEASURED, 4, 'us-central1', 'n1-standard-4')
    assert bigger.wall_minutes == pytest.approx(got.wall_minutes / 4)
    assert bigger.vcpu_hours == pytest.approx(got.vcpu_hours)


def test_an_override_price_wins_and_an_unknown_region_warns():
    measured = estimate.Measurement(3600.0, 3600, 'local run r2')
    got = estimate.estimate('Job', 3600, measured, 1, 'mars-north1', vcpu_hour_usd=1.0)
    assert got.usd == pytest.approx(1.0)
    unpriced = estimate.estimate('Job', 3600, measured, 1, 'mars-north1')
    assert unpriced.usd is None and 'mars-north1' in unpriced.warnings[0]
    assert unpriced.vcpu_hours == pytest.approx(1.0)


def test_no_measurement_gives_a_warning_not_a_figure():
    got = estimate.estimate('Job', 100_000, None, 20, 'us-central1')
    assert got.vcpu_hours is None and got.usd is None and got.wall_minutes is None
    [warning] = got.warnings
    assert 'rehearse it first' in warning
    assert estimate.figures_text(got.as_record()) == 'no figure (see the warnings)'


@pytest.mark.parametrize('value', [0, -3, 'many', None, float('nan')])
def test_a_cap_that_is_not_positive_is_refused_in_one_sentence(value):
    with pytest.raises(estimate.GuardrailError, match='must be a positive number'):
        estimate.estimate('Job', 10, MEASURED, value, 'us-central1')


def test_the_budget_prices_what_the_job_reported():
    rates = prices.RATES['us-central1'].as_dict()
    usage = {'vcpu_seconds': 7200.0, 'memory_gb_seconds': 3600.0 * 10, 'shuffle_gb': 2.0}
    cost = estimate.cost_of(usage, rates)
    assert cost == pytest.approx(2 * 0.056 + 10 * 0.003557 + 2 * 0.011)
    budget = {'max_cost_usd': 0.1, 'rates': rates}
    assert 'passed its budget, max_cost_usd = $0.10' in estimate.over_budget(
        budget, {**usage, 'cost_usd': cost})
    assert estimate.over_budget({**budget, 'max_cost_usd': 1.0}, {'cost_usd': cost}) is None
    assert estimate.budget_left_text({'max_cost_usd': 1.0}, {'cost_usd': 0.25}).startswith(
        '$0.75 of $1.00 left')


# Over the demo export, after a rehearsal.

def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _demo_export(target, folder, count):
    with testing.ndb_context(target):
        return write_export(sample_data.explorations(count), str(folder),
                            project=target.project)


def test_estimate_after_a_rehearsal_scales_what_it_measured(
        capsys, datastore_target, tmp_path):
    small = _demo_export(datastore_target, tmp_path / 'small', 30)
    large = _demo_export(datastore_target, tmp_path / 'large', 90)
    code, out, err = _cli(capsys, 'estimate', MIGRATION, '--export', large,
                          '--region', 'us-central1')
    assert code == 0, err
    assert 'WARNING: No rehearsal or run of' in out and 'no figure' in out
    assert 'vCPU hours' not in out.split('WARNING')[0].replace('no figure', '')

    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', small)
    rehearsal_id = out.splitlines()[0].split(': ', 1)[1]
    record = rehearsal_records.RehearsalStore(datastore_target).get(rehearsal_id)
    measured = record.measured
    assert measured['run_id'] == record.run_id and measured['entities'] == 30
    run = runs.RunStore(datastore_target).get(record.run_id)
    assert measured['cpu_seconds'] == run.usage['cpu_seconds'] > 0
    assert (f"- CPU of the job's run: {measured['cpu_seconds']:.1f} s for 30 entities"
            in out)   # the report says what estimates scale from

    code, out, err = _cli(capsys, 'estimate', MIGRATION, '--export', large,
                          '--region', 'us-central1', '--max_num_workers', '3')
    assert code == 0, err
    assert 'WARNING' not in out
    per_entity = measured['cpu_seconds'] / 30
    vcpu_hours = per_entity * 90 / 3600
    rates = prices.RATES['us-central1']
    shown = re.search(r'about (\S+) vCPU hours, (.+) with 3 worker\(s\), \$(\S+)', out)
    assert float(shown.group(1)) == pytest.approx(vcpu_hours, rel=1e-3)
    assert float(shown.group(3)) == pytest.approx(
        vcpu_hours * (rates.vcpu_hour + 3.75 * rates.memory_gb_hour), rel=1e-2, abs=1e-4)
    assert f'CPU per entity: {per_entity * 1000:.3f} ms, measured by rehearsal {rehearsal_id}' in out
    assert 'entities to read: 90' in out and prices.PRICES_AS_OF in out


@pytest.mark.parametrize('flag', ['--max_num_workers=0', '--max_num_workers=-2'])
def test_estimate_refuses_a_worker_cap_that_caps_nothing(capsys, datastore_target,
                                                         tmp_path, flag):
    export = _demo_export(datastore_target, tmp_path / 'e', 3)
    code, out, err = _cli(capsys, 'estimate', MIGRATION, '--export', export, flag)
    assert code == cli.EXIT_USAGE and out == ''
    assert err.count('\n') == 1 and 'max_num_workers must be a positive number' in err
