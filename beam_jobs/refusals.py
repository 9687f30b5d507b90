"""A refusal: a request that cannot be done as asked, said in one sentence.

Every check that says no (bad input, an unknown run, a gate without an
approved rehearsal, a record whose state forbids the request) raises a
`Refused`, or one of its kinds below, before anything has changed. Its
message is the one sentence a user reads: what is wrong and what to do.
Every surface catches this one class: the CLI prints the sentence and exits
`EXIT_CODE`; the console answers with the sentence and the HTTP status of its
kind; a legacy `enqueue` under an existing record ends that record failed
with it.

A failure of a run (its job raised, the Datastore failed while it read) is
not a refusal: it is recorded on the run, which ends failed (exit 1).

`Refused` is a ValueError, so code written against "bad input is a
ValueError" still catches every refusal.
"""

from __future__ import annotations

# The exit code of every refused command (cli/common.py: EXIT_USAGE).
EXIT_CODE = 2


class Refused(ValueError):
    """A request refused before anything changed; the message says why and
    what to do next."""

    exit_code = EXIT_CODE


class NotFound(Refused, LookupError):
    """What the request names does not exist: a job, a run, a rehearsal, a
    request."""


class Conflict(Refused):
    """A well-formed request that the state of a record forbids (a run that
    already ended, a rehearsal that did not pass)."""


class NotAllowed(Refused):
    """A request understood, but not one this user may make."""
