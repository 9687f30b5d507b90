"""The tests: one module per framework module, in folders mirroring
beam_jobs/ (tests/lifecycle/test_gate.py tests beam_jobs/lifecycle/gate.py,
tests/test_flags.py the leaf beam_jobs/flags.py), and scenarios/, the tests
that play a user's whole path across modules."""
