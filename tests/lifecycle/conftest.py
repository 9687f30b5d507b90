"""What the lifecycle's tests share: an export of a few notes to plan over."""

import pytest

from beam_jobs import testing
from beam_jobs.export import write_export
from tests import job_fixtures as fx


@pytest.fixture
def export(datastore_target, tmp_path):
    with testing.ndb_context(datastore_target):
        return write_export(fx.notes(4), str(tmp_path / 'notes'),
                            project=datastore_target.project)
