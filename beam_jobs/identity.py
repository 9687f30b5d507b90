"""Who is acting: the person at this machine, as the team's records name them.

On the command line that is the machine's user (`getpass.getuser()`: the
LOGNAME or USER the session set, else the account's name); on the console, the
name its user signed in as (console/security.py). Approvals, rejections and
the gate's decisions record it, never a name typed into a form.
"""

from __future__ import annotations

import getpass
import socket


def machine_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no name for this account
        return 'unknown'


def machine() -> str:
    return socket.gethostname()
