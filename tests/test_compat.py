"""The fence around other libraries' internals (beam_jobs/compat/).

Only `beam_jobs.compat` touches a private name of another library, and each
of its modules checks, when imported, that every internal it uses is there:
an upgrade that removes one fails at import with a sentence naming it.
"""

import ast
import importlib
import importlib.util
import pathlib
import threading

import pytest
from google.cloud import datastore
from google.cloud.ndb import model as ndb_model

import beam_jobs
from beam_jobs import compat
from beam_jobs.compat import datastore_client
from beam_jobs.compat import ndb as ndb_compat

ROOT = pathlib.Path(beam_jobs.__file__).parent


def _private_uses(path: pathlib.Path) -> list[str]:
    """`x._name` where x is not self/cls/super(), and imports of `_name`s."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr.startswith('_')
                and not node.attr.startswith('__')):
            base = node.value
            if isinstance(base, ast.Name) and base.id in ('self', 'cls'):
                continue
            if isinstance(base, ast.Call) and getattr(base.func, 'id', None) == 'super':
                continue
            found.append(f'{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}')
        if isinstance(node, ast.ImportFrom):
            module_parts = (node.module or '').split('.')
            names = [alias.name for alias in node.names]
            if any(part.startswith('_') and part != '__future__' for part in module_parts) or \
                    any(name.startswith('_') and not name.startswith('__') for name in names):
                found.append(f'{path.relative_to(ROOT)}:{node.lineno}: from {node.module}')
    return found


def test_no_private_name_of_another_library_outside_compat():
    uses = [use for path in sorted(ROOT.rglob('*.py'))
            if 'compat' not in path.relative_to(ROOT).parts
            for use in _private_uses(path)]
    assert uses == []


def test_a_missing_internal_is_named_with_the_version_written_for():
    with pytest.raises(compat.CompatError) as refused:
        compat.require('google-cloud-ndb', '2.7.1', 'beam_jobs.compat.ndb',
                       [('model._Gone', lambda: ndb_model._Gone)])  # pylint: disable=protected-access
    message = str(refused.value)
    assert "google-cloud-ndb's internal `model._Gone`" in message
    assert 'written for 2.7.1' in message
    assert f'installed google-cloud-ndb {compat.version_of("google-cloud-ndb")}' in message
    assert 'install google-cloud-ndb==2.7.1, or adapt beam_jobs.compat.ndb' in message


def _import_afresh(module) -> None:
    """Run a module's code again in a new module object (its import-time
    checks included), leaving the imported one, and sys.modules, alone."""
    spec = importlib.util.find_spec(module.__name__)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_an_upgrade_that_drops_an_internal_fails_at_import(monkeypatch):
    """Each compat module checks its internals when imported."""
    _import_afresh(ndb_compat)
    _import_afresh(datastore_client)
    monkeypatch.delattr(ndb_model, '_BaseValue')
    with pytest.raises(compat.CompatError, match='model._BaseValue'):
        _import_afresh(ndb_compat)
    monkeypatch.undo()
    # An Entity that no longer keeps its meanings where the codec looks.
    monkeypatch.setattr(datastore.Entity, '__init__', lambda self, *a, **k: dict.__init__(self))
    with pytest.raises(compat.CompatError, match='Entity._meanings'):
        _import_afresh(datastore_client)


def test_the_uncapped_channel_is_the_only_api_object_replaced(datastore_target):
    from beam_jobs import target as target_lib
    client = target_lib.client(datastore_target)
    # The client still works for every call the stores make.
    key = client.key('CompatCheck', 'x')
    entity = datastore.Entity(key)
    entity['n'] = 1
    client.put(entity)
    assert client.get(key)['n'] == 1


def test_a_state_sampler_left_running_is_stopped():
    from apache_beam.runners.worker import statesampler
    from beam_jobs.compat import beam as beam_compat
    sampler = statesampler.StateSampler('left-running', None)
    sampler.start()
    before = {thread for thread in threading.enumerate() if thread.is_alive()}
    assert beam_compat.stop_state_samplers() == 1
    assert sampler.finished
    assert len({t for t in threading.enumerate() if t.is_alive()}) == len(before) - 1
    assert beam_compat.stop_state_samplers() == 0
