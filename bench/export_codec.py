"""What reading and writing a managed export costs per entity, in-process.

    python -m bench.export_codec [--entities 2000]

Encodes sample explorations (~12 KB each) as export records, then times,
per entity: the protobuf parse alone, `EntityDecoder.decode` (parse and
walk: what `ReadExport` does per record) and `entities_lib.to_model` after it
(what the map step then adds). Then times writing a sample export with
`pipelines.sample_data.export` (generation, ndb serialisation and encoding,
one process per core).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from google.auth.credentials import AnonymousCredentials
from google.cloud import ndb

from beam_jobs import entities as entities_lib
from beam_jobs.export import decode, encode, protos
from pipelines import sample_data
from pipelines.models import exp_models


def _best_of(repeats: int, function, items) -> float:
    """The fastest of `repeats` passes over `items`, in µs per item."""
    best = float('inf')
    for _ in range(repeats):
        began = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, time.perf_counter() - began)
    return best / len(items) * 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--entities', type=int, default=2000)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    client = ndb.Client(project='bench', credentials=AnonymousCredentials())
    with client.context(legacy_data=True):
        records = [encode.encode(model)
                   for model in sample_data.explorations(args.entities)]
        decoder = decode.EntityDecoder('bench', ['ExplorationModel'], '')
        size = sum(map(len, records)) / len(records)
        print(f'{len(records)} records, {size / 1000:.1f} KB each on average')
        print(f'parse only      {_best_of(args.repeats, protos.EntityProto.FromString, records):6.1f} µs/entity')
        print(f'decode          {_best_of(args.repeats, decoder.decode, records):6.1f} µs/entity')
        print(f'decode+to_model {_best_of(args.repeats, lambda r: entities_lib.to_model(decoder.decode(r), exp_models.ExplorationModel), records):6.1f} µs/entity')
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        sample_data.export(args.entities * 5, folder, 'bench', per_file=args.entities)
        seconds = time.perf_counter() - began
        print(f'sample export   {args.entities * 5 / seconds:6.0f} entities/s '
              f'({args.entities * 5} explorations, {seconds:.1f} s)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
