"""Rehearsals: a job run over a copy of production data, checked, and signed off.

    record.py   what a rehearsal proved and who approved it (BeamJobRehearsal)
"""
