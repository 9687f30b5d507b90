"""This project's own one-off jobs and the models they map over.

Laid out the way an App Engine code base held them (models, domain objects,
`*_jobs_one_off.py`, a jobs registry), so porting one is an import change.
"""
