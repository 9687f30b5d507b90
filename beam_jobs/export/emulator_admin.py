"""Export from and import into the local Datastore emulator.

The emulator serves the Datastore Admin calls: `POST /v1/projects/P:export`
writes a managed export to a local folder and `:import` loads one. Both
answer when the work is done (an operation with `done: true`). Two quirks,
handled here: `:export` answers with the folder it was given, not the
metadata file; and given several kinds (or namespaces) it writes one
timestamped export per kind, the last holding them all, so the helper finds
and returns the whole one.

The emulator reads its emulator-local paths: these helpers are for a local
emulator and local folders, not Cloud Storage.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Iterable, Optional, Sequence, Union

from apache_beam.io.filesystems import FileSystems

from beam_jobs import refusals
from beam_jobs.export import metadata

TIMEOUT_SECS = 600


class EmulatorAdminError(refusals.Refused, RuntimeError):
    """The emulator refused or failed an export or import."""


def _post(host: str, project: str, method: str, body: dict) -> dict:
    url = f'http://{host}/v1/projects/{project}:{method}'
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method='POST',
        headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECS) as response:
            answer = json.loads(response.read() or b'{}')
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors='replace')
        try:
            problem = json.loads(detail)['error']
            detail = problem.get('message') or problem.get('status') or detail
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        raise EmulatorAdminError(
            f'The emulator at {host} refused the {method} ({error.code}): '
            f'{detail}') from error
    except (urllib.error.URLError, OSError) as error:
        raise EmulatorAdminError(
            f'The emulator at {host} could not be reached for the {method} '
            f'({error}): start it (`beam-jobs emulator start`) or check the '
            'host.') from error
    state = answer.get('metadata', {}).get('common', {}).get('state')
    if 'error' in answer or not answer.get('done') or state != 'SUCCESSFUL':
        raise EmulatorAdminError(
            f'The emulator at {host} did not finish the {method}: '
            f'{json.dumps(answer.get("error") or answer)[:500]}')
    return answer


def export_from_emulator(host: str, project: str, dest: str,
                         kinds: Optional[Iterable[str]] = None,
                         namespace: Union[None, str, Sequence[str]] = None) -> str:
    """Exports the emulator's data to the new folder `dest`.

    `kinds` None exports every kind. `namespace` None exports every
    namespace; '' only the default one; a list, each of those. Returns the path of the
    `.overall_export_metadata` of the export that holds everything asked
    for. `dest` must not exist yet (the emulator refuses otherwise).
    """
    if '://' not in dest:
        # The emulator resolves a relative path against its own folder.
        dest = os.path.abspath(dest)
    body: dict = {'output_url_prefix': dest}
    entity_filter = {}
    if kinds is not None:
        entity_filter['kinds'] = list(kinds)
    if namespace is not None:
        entity_filter['namespace_ids'] = (
            [namespace] if isinstance(namespace, str) else list(namespace))
    if entity_filter:
        body['entity_filter'] = entity_filter
    _post(host, project, 'export', body)
    [match] = FileSystems.match(
        [f'{dest.rstrip("/")}/*/*{metadata.OVERALL_SUFFIX}'])
    found = [metadata.read_export_info(item.path)
             for item in match.metadata_list]
    if not found:
        raise EmulatorAdminError(
            f'The emulator reported an export to {dest} but wrote no '
            f'{metadata.OVERALL_SUFFIX} file there: is {dest} a folder the '
            'emulator can write (it runs on this machine)?')
    # One export per kind, each holding the kinds before it: the whole one
    # has the most entity sets (the latest breaks a tie).
    whole = max(found, key=lambda info: (len(info.entity_sets), info.timestamp))
    return whole.metadata_path


def import_into_emulator(host: str, project: str, metadata_path: str) -> None:
    """Imports an export into `project`: its metadata file, or its folder.

    Keys are rewritten to `project`, whatever project the export came from.
    The metadata is read here first: the emulator's own answer to a bad file
    gives no reason.
    """
    if '://' not in metadata_path:
        metadata_path = os.path.abspath(metadata_path)
    info = metadata.read_export_info(metadata_path)
    _post(host, project, 'import', {'input_url': info.metadata_path})
