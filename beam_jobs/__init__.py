"""beam-jobs: App Engine MapReduce one-off jobs, run on Apache Beam.

The public face: `jobs` (the legacy job API), `RunJob` and `MapReduce` (the
composite transforms a job compiles to), `ReadExport` (a managed export as
the same entities a Datastore read gives) and `JobRegistry`.
"""

from beam_jobs import jobs
from beam_jobs.export import ReadExport
from beam_jobs.registry import JobRegistry
from beam_jobs.compile.transforms import MapReduce, RunJob

__all__ = ['jobs', 'JobRegistry', 'MapReduce', 'ReadExport', 'RunJob']
