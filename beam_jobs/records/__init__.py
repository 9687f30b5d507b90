"""Records: plain models in a Datastore, stored, loaded and moved through their
states; never a call to a service or to user code.

    store.py       what every store shares: a kind in a target, ids, lookups
    runs.py        BeamJobRun: a run's record and its statuses
    rehearsals.py  BeamJobRehearsal: what a rehearsal proved, who approved it
"""
