"""Rehearsals: a job run over a copy of production data, checked, and signed off.

    rehearse.py  what surfaces call: plan, rehearse, take on, cancel
    plan.py      a rehearsal checked before anything runs; the jobs it follows
    record.py    its record: created, changed a step at a time, ended once
    state.py     what the record keeps for whoever takes it on, typed
    steps.py     the step machine: which step is next, taking it, taking on
    expect.py    a job's expected output, and how output measures up to it
    report.py    a rehearsal record as the Markdown report a coordinator signs

The records are kept by records/rehearsals.py; the production gate that reads
the approvals is lifecycle/gate.py.
"""
