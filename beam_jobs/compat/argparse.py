"""The standard library's argparse: the flags a parser knows.

argparse has no public way to list a parser's options; `ArgumentParser._actions`
has held them since Python 3.2. The CLI lists its own flags (suggestions for a
mistyped one) and Beam's (flags.py) through it.
"""

from __future__ import annotations

import argparse

from beam_jobs import compat


def _has_actions() -> bool:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--x')
    return [a.option_strings for a in parser._actions] == [['--x']]  # pylint: disable=protected-access


compat.require('python', '3.11', __name__,
               [('argparse.ArgumentParser._actions', _has_actions)])


def long_options(parser: argparse.ArgumentParser) -> list[str]:
    """Every `--flag` spelling the parser takes, in the order they were added."""
    return [option for action in parser._actions  # pylint: disable=protected-access
            for option in action.option_strings if option.startswith('--')]
