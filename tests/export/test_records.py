"""The LevelDB log format of export files: round trips, offsets, damage."""

import io
import random

import pytest

from beam_jobs.export import records
from beam_jobs.export.records import BLOCK_SIZE, HEADER_SIZE


def _file(sizes, seed=1):
    rng = random.Random(seed)
    items = [bytes(rng.getrandbits(8) for _ in range(size)) if size < 2000
             else rng.randbytes(size) for size in sizes]
    stream = io.BytesIO()
    writer = records.RecordWriter(stream)
    for item in items:
        writer.write(item)
    return items, stream.getvalue()


def _read(data, start=0, stop=None, name='output-0'):
    return list(records.read_records(io.BytesIO(data), name, start, stop))


# Sizes that hit the edges: empty, a record ending exactly at a block's
# end, one leaving under 7 bytes (padding), a record spanning many blocks.
SIZES = [0, 10, BLOCK_SIZE - 2 * HEADER_SIZE - 10, 3, 100_000, 1, 5000,
         BLOCK_SIZE - HEADER_SIZE - 3, 20, 300_000, 7]


def test_round_trip_with_records_spanning_blocks():
    items, data = _file(SIZES)
    found = _read(data)
    assert [record for _, record in found] == items
    kinds = {data[offset + 6] for offset, _ in found}
    assert {records.FULL, records.FIRST} <= kinds
    # A record of 300,000 bytes is FIRST, several MIDDLEs and a LAST.
    assert data.count(bytes([records.MIDDLE])) >= 1
    assert len(data) % BLOCK_SIZE != 0     # no padding after the last record


def test_every_start_offset_reads_the_records_that_start_there_or_later():
    items, data = _file(SIZES)
    offsets = [offset for offset, _ in _read(data)]
    for start in list(range(0, len(data), 997)) + [o + d for o in offsets for d in (-1, 0, 1)]:
        start = max(start, 0)
        got = _read(data, start)
        assert [offset for offset, _ in got] == [o for o in offsets if o >= start], start
        assert [record for _, record in got] == items[len(items) - len(got):]


def test_ranges_split_anywhere_read_every_record_once():
    items, data = _file(SIZES)
    cuts = sorted({0, len(data), *random.Random(3).sample(range(len(data)), 40)})
    read = [record for start, stop in zip(cuts, cuts[1:])
            for _, record in _read(data, start, stop)]
    assert read == items


def test_a_bad_checksum_names_the_file_and_the_offset():
    items, data = _file([100, 200, 300])
    second = HEADER_SIZE + 100
    damaged = bytearray(data)
    damaged[second + HEADER_SIZE + 50] ^= 0xff
    with pytest.raises(records.RecordError,
                       match=rf'gs://b/x/output-3 is corrupt at byte {second}: checksum'):
        _read(bytes(damaged), name='gs://b/x/output-3')


def test_a_damaged_chunk_inside_a_long_record_is_reported_not_skipped():
    items, data = _file([10, 100_000, 10])
    damaged = bytearray(data)
    damaged[BLOCK_SIZE + 100] ^= 0x01      # inside a MIDDLE chunk's data
    with pytest.raises(records.RecordError, match=f'corrupt at byte {BLOCK_SIZE}:'):
        _read(bytes(damaged))


@pytest.mark.parametrize('cut, message', [
    (HEADER_SIZE + 10 + 3, 'ends inside the chunk header at byte 17'),
    (HEADER_SIZE + 10 + HEADER_SIZE + 50, 'chunk at byte 17 needs 100 bytes'),
])
def test_a_truncated_file_is_an_error(cut, message):
    _, data = _file([10, 100])
    with pytest.raises(records.RecordError, match=message):
        _read(data[:cut], name='output-7')


def test_a_record_cut_at_a_block_boundary_is_an_error():
    _, data = _file([100_000])
    with pytest.raises(records.RecordError, match='record that starts at byte 0 has no LAST'):
        _read(data[:BLOCK_SIZE])


def test_chunks_out_of_order_are_an_error():
    _, data = _file([100_000])
    # Starting from 0, a file that begins with a MIDDLE chunk is corrupt.
    middle = data[BLOCK_SIZE:2 * BLOCK_SIZE]
    with pytest.raises(records.RecordError, match='MIDDLE chunk follows no FIRST'):
        _read(middle)
