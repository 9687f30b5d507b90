"""ReadExport: a managed export's entities, as the Datastore read gives them.

A run that reads an export instead of the Datastore swaps one transform:
`ReadExport(path, kinds)` yields the same Beam entities `ReadFromDatastore`
yields for those kinds, so the map step and everything after it are unchanged.

Reading is a Beam `FileBasedSource` over the `output-N` files of each folder
that holds a wanted kind (files.py). A folder that holds several kinds or
namespaces (a full export) is read once for all the kinds wanted from it,
keeping only those. A rehearsal's after state is read by after_state.py.
"""

from __future__ import annotations

from typing import Iterable, Optional, Type, Union

import apache_beam as beam
from google.cloud import ndb

from beam_jobs.compat import ndb as ndb_compat
from beam_jobs.export import after_state
from beam_jobs.export import files
from beam_jobs.export import metadata

KindOrModel = Union[str, Type[ndb.Model]]


def _kind(kind_or_model: KindOrModel) -> str:
    if isinstance(kind_or_model, str):
        return kind_or_model
    if isinstance(kind_or_model, type) and issubclass(kind_or_model, ndb.Model):
        return ndb_compat.kind_of(kind_or_model)
    raise TypeError(
        f'ReadExport takes kind names or ndb model classes, not '
        f'{kind_or_model!r}.')


class ReadExport(beam.PTransform):
    """pbegin → the Beam entities of `kinds_or_models` in a managed export.

    `path`: the export's `.overall_export_metadata` file or the folder that
    holds it (local or `gs://`), or a rehearsal's after state
    (after_state.py), read as its base with the writes applied. `namespace`
    None reads the default namespace, as a Datastore read with no namespace
    does. `project` None puts keys in the export's own project (its app id
    without an `s~`/`e~` prefix). The export and the kinds are checked here,
    when the pipeline is built, so a wrong path or kind fails before anything
    runs; but a full export (every kind in one folder) does not list its
    kinds, so there a kind it lacks reads as no entities.
    """

    def __init__(self, path: str, kinds_or_models: Iterable[KindOrModel],
                 project: Optional[str] = None,
                 namespace: Union[None, str, tuple[str, ...]] = None):
        super().__init__()
        if isinstance(kinds_or_models, (str, type)):
            kinds_or_models = [kinds_or_models]
        kinds = [_kind(item) for item in kinds_or_models]
        if not kinds:
            raise ValueError('ReadExport needs at least one kind to read.')
        self._selection: Optional[files.Selection] = None
        self._read: Union[after_state.ReadAfterState, files.ReadSelection]
        if after_state.is_after_state(path):
            # A rehearsal's after state: its base, with the writes applied.
            if isinstance(namespace, tuple):
                raise ValueError('An after state is read one namespace at a time.')
            self._read = after_state.ReadAfterState(
                after_state.read(path), kinds, project, namespace)
        else:
            self._selection = files.Selection(path, kinds, project, namespace)
            self._read = files.ReadSelection(self._selection)

    @property
    def info(self) -> metadata.ExportInfo:
        return self._read.info

    @property
    def project(self) -> Optional[str]:
        """The project the entities' keys are put in."""
        return self._read.project

    def data_files(self) -> Optional[list[str]]:
        """The data files this read reads (None for an after state)."""
        return self._selection.data_files() if self._selection else None

    def expand(self, pbegin):
        return pbegin | ('Layers' if self._selection is None else 'Files') >> self._read
