"""A run's lifecycle: planned once, started, followed, canceled, ended.

    planning.py           plan_run: every check and decision, before a record
    gate.py               the production gate (code_version.py: what was rehearsed)
    launcher.py           what surfaces ask to start and cancel a run, and to
                          end one that never started (refused, not started,
                          not needed): no surface ends a record itself
    record_stores.py      which Datastore keeps run and sign-off records
    follow.py             what every surface asks to follow one: current, until_end
    backend.py            the runner backend interface, and the shared start
    local.py, dataflow.py the two backends (dataflow_settings.py: checks, names;
                          dataflow_api.py: its calls; dataflow_fields.py: its
                          answers as record fields; run_text.py: for people)
    ending.py             a run's end, once, with the job's hooks (hooks.py)
    stops.py              what stops a run from outside: signals, a lost Datastore
    run_logs.py           a run's log file, and an end its Datastore could not take
"""
