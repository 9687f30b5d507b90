"""The record format of export files: LevelDB log files.

A managed export's data files, and its `.overall_export_metadata`, are
LevelDB log files: 32 KiB blocks of chunks, each chunk a 7-byte header
(masked CRC32C of type byte + data, little-endian u32; data length, u16; type,
u8) and its data. A record that does not fit in what is left of a block is cut
into FIRST, MIDDLE… and LAST chunks; a record that fits is one FULL chunk.
Fewer than 7 bytes left at the end of a block are zero padding.

Every block starts at a chunk boundary, which is what lets a reader start at
any block: it skips MIDDLE and LAST chunks (the tail of a record that began
earlier) until a FULL or FIRST. `read_records` starts at any byte offset and
yields only records whose first chunk begins at or after it, so byte ranges of
one file, each read by its own worker, together read every record exactly
once. It reads one block at a time and never holds more than one record.

Corruption is never skipped: a bad checksum, a chunk out of order or a file
cut short raises `RecordError` naming the file and the byte offset.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterator, Optional

import google_crc32c

BLOCK_SIZE = 32 * 1024
HEADER_SIZE = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_MASK_DELTA = 0xa282ead8
_HEADER = struct.Struct('<IHB')
# CRC32C of each type byte, the start of every chunk's checksum.
_TYPE_CRC = {kind: google_crc32c.value(bytes([kind]))
             for kind in (FULL, FIRST, MIDDLE, LAST)}
_PADDING = bytes(HEADER_SIZE)


class RecordError(ValueError):
    """A LevelDB log file is corrupt or cut short."""


def masked_crc(kind: int, data: bytes) -> int:
    """The checksum a chunk header stores: CRC32C of type + data, masked.

    LevelDB masks stored CRCs so that a CRC of data that itself holds CRCs
    does not look like one.
    """
    crc = google_crc32c.extend(_TYPE_CRC[kind], data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xffffffff


def _read_block(stream: BinaryIO) -> bytes:
    block = stream.read(BLOCK_SIZE)
    # Some streams return short reads before the end; a block must be whole.
    while block and len(block) < BLOCK_SIZE:
        more = stream.read(BLOCK_SIZE - len(block))
        if not more:
            break
        block += more
    return block


def read_records(stream: BinaryIO, name: str, start: int = 0,
                 stop: Optional[int] = None) -> Iterator[tuple[int, bytes]]:
    """`(offset, record)` for every record whose first chunk starts in range.

    The range is `[start, stop)` (`stop=None`: to the end of the file);
    `offset` is where the record's first chunk starts, which is what a Beam
    range tracker claims. `stream` must be seekable; `name` only appears in
    errors.
    """
    block_start = start - start % BLOCK_SIZE
    stream.seek(block_start)
    # At a block past the first, the first chunks may end a record that began
    # in an earlier block: that record belongs to whoever reads that block.
    reader = _Chunks(name, start, stop, skipping_tail=block_start > 0)
    while True:
        block = _read_block(stream)
        if not block:
            break
        yield from reader.records_of(block, block_start)
        if reader.done:
            return
        if len(block) < BLOCK_SIZE:
            break
        block_start += BLOCK_SIZE
    if reader.pieces is not None:
        raise RecordError(
            f'{name} is cut short: the record that starts at byte '
            f'{reader.record_offset} has no LAST chunk. Copy or export the file again.')


class _Chunks:
    """The chunks of a log file, block after block, joined into records;
    what is carried from one block to the next is kept here."""

    def __init__(self, name: str, start: int, stop: Optional[int], skipping_tail: bool):
        self.name, self.start, self.stop = name, start, stop
        self.pieces: Optional[list[bytes]] = None   # the record being read
        self.record_offset = 0
        self.skipping_tail = skipping_tail
        self.done = False                            # reached `stop`

    def records_of(self, block: bytes, block_start: int) -> Iterator[tuple[int, bytes]]:
        name, start, stop = self.name, self.start, self.stop
        pieces, skipping_tail = self.pieces, self.skipping_tail
        size, pos = len(block), 0
        while size - pos >= HEADER_SIZE:
            offset = block_start + pos
            crc, length, kind = _HEADER.unpack_from(block, pos)
            end = pos + HEADER_SIZE + length
            if end > size:
                raise _overrun(name, offset, length, size - pos - HEADER_SIZE, size)
            if kind == 0 and length == 0 and crc == 0:
                pos = end  # zeros a preallocating writer left: no record here
                continue
            if kind in (MIDDLE, LAST) and pieces is None:
                if not skipping_tail:
                    raise _corrupt(name, offset, f'a {_NAMES[kind]} chunk '
                                   'follows no FIRST chunk')
                skipping_tail = kind == MIDDLE
                pos = end
                continue
            if kind in (FULL, FIRST) and offset < start:
                # The record began before this range: the range before reads it.
                skipping_tail = kind == FIRST
                pos = end
                continue
            if kind not in _NAMES:
                raise _corrupt(name, offset, f'unknown chunk type {kind}')
            if stop is not None and pieces is None and offset >= stop:
                self.done = True
                return
            data = block[pos + HEADER_SIZE:end]
            if masked_crc(kind, data) != crc:
                raise _corrupt(name, offset, 'checksum mismatch')
            skipping_tail = False
            pos = end
            if kind in (FULL, FIRST) and pieces is not None:
                raise _corrupt(name, offset, f'a {_NAMES[kind]} chunk inside the '
                               f'record that starts at byte {self.record_offset}')
            if kind == FULL:
                yield offset, data
            elif kind == FIRST:
                pieces, self.record_offset = [data], offset
            else:   # MIDDLE or LAST, after a FIRST (see above)
                assert pieces is not None
                pieces.append(data)
                if kind == LAST:
                    record, pieces = b''.join(pieces), None
                    yield self.record_offset, record
            self.pieces = pieces
        self.pieces, self.skipping_tail = pieces, skipping_tail
        if size < BLOCK_SIZE and pos < size and block[pos:] != _PADDING[:size - pos]:
            raise RecordError(
                f'{name} is cut short: it ends inside the chunk header at '
                f'byte {block_start + pos}. Copy or export the file again.')


def _overrun(name: str, offset: int, length: int, left: int, size: int) -> Exception:
    """A chunk longer than what is left of its block: a file cut short (in
    its last block) or a damaged length."""
    if size < BLOCK_SIZE:
        return RecordError(
            f'{name} is cut short: the chunk at byte {offset} needs {length} bytes, '
            f'the file ends after {left}. Copy or export the file again.')
    return _corrupt(name, offset, f'chunk length {length} runs past the end of its block')


_NAMES = {FULL: 'FULL', FIRST: 'FIRST', MIDDLE: 'MIDDLE', LAST: 'LAST'}


def _corrupt(name: str, offset: int, what: str) -> RecordError:
    return RecordError(
        f'{name} is corrupt at byte {offset}: {what}. Export the data again; '
        'no record of a damaged file is skipped.')


class RecordWriter:
    """Writes records to a binary stream as a LevelDB log file.

    The stream is assumed to start at a block boundary (a new file). Like
    LevelDB, no padding follows the last record: a file ends where its last
    chunk does.
    """

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._block_used = 0
        self.bytes_written = 0

    def write(self, record: bytes) -> None:
        record = bytes(record)
        left = len(record)
        begin = 0
        first = True
        while True:
            space = BLOCK_SIZE - self._block_used
            if space < HEADER_SIZE:
                self._emit(_PADDING[:space])
                self._block_used = 0
                space = BLOCK_SIZE
            take = min(left, space - HEADER_SIZE)
            last = take == left
            kind = (FULL if last else FIRST) if first else (
                LAST if last else MIDDLE)
            data = record[begin:begin + take]
            self._emit(_HEADER.pack(masked_crc(kind, data), take, kind))
            self._emit(data)
            self._block_used += HEADER_SIZE + take
            begin += take
            left -= take
            first = False
            if last:
                return

    def _emit(self, data: bytes) -> None:
        self._stream.write(data)
        self.bytes_written += len(data)
