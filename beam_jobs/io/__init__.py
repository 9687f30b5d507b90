"""Reading and writing for a run: the sources/IO layer.

    sources.py          where a run reads: the Datastore, an export, an after state
    write_modes.py      what becomes of a run's writes (decided once, in the plan)
    datastore_read.py   every kind's key ranges, read by one transform
    datastore_write.py  puts and deletes, bounded for the emulator
    stored_output.py    a run's stored report: BeamJobRunOutput entities
"""
