pytest_plugins = ['beam_jobs.testing']
