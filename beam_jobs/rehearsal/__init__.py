"""Rehearsals: a job run over a copy of production data, checked, and signed off.

    rehearse.py  plan and run a rehearsal to its verdict
    expect.py    a job's expected output, and how output measures up to it
    report.py    a rehearsal record as the Markdown report a coordinator signs

The records are kept by records/rehearsals.py; the production gate that reads
the approvals is lifecycle/gate.py.
"""
