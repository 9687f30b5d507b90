# Fixtures for every test: the Datastore emulator (beam_jobs.testing) and
# Cloud Storage (tests/storage_emulator.py).
pytest_plugins = ['beam_jobs.testing', 'tests.storage_emulator', 'tests.dataflow_stub']
