"""Which flags exist: beam-jobs' own, and every option Beam defines.

Beam's own parser drops a flag it does not know with a warning, and a run
goes on as if it had not been given. For a job that writes, a dropped
`--dryrun` (meant as `--dry-run`) means data changed by mistake. So every
flag a run is given must be one of beam-jobs' own or an option some Beam
`PipelineOptions` class defines, and anything else is refused before
anything starts.

Beam's options are read from Beam itself at run time, through the parser
its `PipelineOptions.get_all_options` builds from every options class, never
from a copied list: a Beam upgrade that adds or renames an option is
followed without a change here.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Iterable, Optional, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import refusals
from beam_jobs.compat import argparse as argparse_compat


class FlagError(refusals.Refused):
    """A flag nobody knows, or a known flag with a value that does not parse."""


def beam_parser() -> argparse.ArgumentParser:
    """The parser Beam itself builds from every PipelineOptions class."""
    captured: list = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=captured.append)
    parser = captured[0]

    def refuse(message: str):
        raise FlagError(message)
    # argparse reports a bad value by printing usage and exiting; a run
    # must instead refuse with one sentence, so errors become exceptions.
    parser.error = refuse
    return parser


def nearest(flag: str, candidates: Sequence[str]) -> Optional[str]:
    """The known flag a mistyped one most likely meant.

    Dashes and underscores are compared as one, and on a tie the earlier
    candidate wins, so callers list their own (preferred) spellings first.
    """
    def normal(text: str) -> str:
        return text.lstrip('-').replace('_', '-').lower()
    best, best_score = None, 0.0
    for candidate in candidates:
        score = difflib.SequenceMatcher(None, normal(flag), normal(candidate)).ratio()
        if score > best_score:
            best, best_score = candidate, score
    return best if best_score >= 0.6 else None


def check(args: Sequence[str], own_flags: Iterable[str] = (),
          command: str = 'beam-jobs run') -> None:
    """Refuse any of `args` that Beam's options do not define, or that Beam
    cannot parse; `own_flags` are offered as suggestions first."""
    parser = beam_parser()
    try:
        _, unknown = parser.parse_known_args(list(args))
    except FlagError as error:
        raise FlagError(f'Bad pipeline flag ({error}): fix the value and run '
                        'the command again.') from None
    if not unknown:
        return
    flags = [arg for arg in unknown if arg.startswith('-')]
    if not flags:
        raise FlagError(
            f'Unexpected argument {unknown[0]!r}: `{command}` takes one job '
            'name, and every other argument must be a flag.')
    name = flags[0].split('=', 1)[0]
    suggestion = nearest(name, [*own_flags, *argparse_compat.long_options(parser)])
    hint = (f'did you mean {suggestion}?' if suggestion
            else f'see `{command} --help` for beam-jobs\' flags; every other '
            'flag must be an option of Beam\'s PipelineOptions.')
    raise FlagError(f'Unknown flag {name} (neither beam-jobs nor Beam knows '
                    f'it, so nothing was run): {hint}')
