"""lifecycle/code_version.py: the fingerprint of what a rehearsal rehearsed
(the job class, the project modules it imports, its params) and the
differences the gate names."""

import re

from beam_jobs.lifecycle import code_version
from pipelines import exp_jobs_one_off

JOB = exp_jobs_one_off.ExplorationContentMigrationOneOffJob


def test_a_fingerprint_covers_the_project_modules_the_job_imports():
    fingerprint = code_version.fingerprint(JOB, {'dry_run': True, 'batch': 2})
    assert fingerprint['job'] == JOB.__name__
    assert fingerprint['params'] == {'batch': 2}     # a dry run is no other run
    modules = fingerprint['modules']
    assert {'pipelines.domain.exp_fetchers', 'pipelines.models.exp_models'} <= set(modules)
    # Not the job's own module (its class is hashed), nor the framework or libraries.
    assert all(name.startswith('pipelines.') for name in modules), modules
    assert 'pipelines.exp_jobs_one_off' not in modules
    assert code_version.fingerprint(JOB, {'batch': 2}) == fingerprint


def test_what_differs_is_named_one_phrase_each():
    rehearsed = {'job': 'J', 'class_sha256': 'a', 'params': {'n': 1},
                 'modules': {'p.domain': '1', 'p.old': '2'}}
    now = {'job': 'J', 'class_sha256': 'b', 'params': {'n': 2},
           'modules': {'p.domain': '9', 'p.new': '3'}}
    assert code_version.differences(rehearsed, rehearsed) == []
    assert code_version.differences(rehearsed, now) == [
        'the source of J itself changed',
        'module p.domain changed',
        'it now imports module p.new, which was not rehearsed',
        'it no longer imports module p.old',
        'param n is 2 here, 1 in the rehearsal']


def test_the_code_version_records_the_commit_and_the_file():
    version = code_version.of(JOB)
    assert version['source_file'].endswith('pipelines/exp_jobs_one_off.py')
    assert re.fullmatch(r'[0-9a-f]{64}', version['source_sha256'])
    assert version['commit'] is None or re.fullmatch(r'[0-9a-f]{40}', version['commit'])
    assert version['fingerprint'] == code_version.fingerprint(JOB)
