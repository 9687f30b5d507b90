"""The release coordinator's web console (`beam-jobs serve`).

    service.py    what the console does: jobs, runs, start, cancel, approve
    launch.py     a start, checked, then run by `beam-jobs run` in its own process
    views.py      records as the pages and the JSON API show them
    security.py   loopback only, or a token; no cross-site changes
    app.py        the pages and the JSON API (Starlette, Jinja2 templates)
    templates/, static/   server-rendered pages and their few lines of JS
"""

from beam_jobs.console.app import create_app
from beam_jobs.console.security import is_loopback, read_users
from beam_jobs.console.service import Console

__all__ = ['Console', 'create_app', 'is_loopback', 'read_users']
