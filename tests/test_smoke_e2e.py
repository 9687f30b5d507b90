from beam_jobs import testing
from pipelines import exp_jobs_one_off, sample_data

def test_audit_runs(datastore_target):
    with testing.ndb_context(datastore_target):
        models = list(sample_data.explorations(20))
    testing.put_models(datastore_target, models)
    job = exp_jobs_one_off.InteractionAuditOneOffJob
    job_id = job.create_new()
    job.enqueue(job_id)
    assert job.get_status_code(job_id) == 'completed', job.get_error(job_id)
    assert job.get_output(job_id)
