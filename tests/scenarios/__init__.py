"""Scenarios: a user's whole path across modules, end to end (team sign-off
across machines, a rehearsal anywhere, the console in a browser, a lost
Datastore, migrations, reverts and retries walked through...)."""
