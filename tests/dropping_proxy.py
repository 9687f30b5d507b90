"""A TCP proxy in front of the emulator that drops connections mid-query.

The Datastore client talks gRPC, that is HTTP/2, to the emulator. The proxy
passes every byte on, and reads the frames coming back: a response whose
first DATA frame names `marker` (a kind) at least `min_marks` times is a
page of that kind's entities. Those pages are numbered from 1 across every
connection, and when `drop(number)` says so, the proxy closes both sides of
that connection instead of passing the page on: the query's RPC is lost in
flight, as when a network or a Datastore frontend goes away.

Run records and small answers never name a kind that often, so only query
pages are dropped; HTTP/1 traffic (the emulator's `GET /`) passes untouched.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable

_HTTP2_PREFACE = b'PRI * HTTP/2.0'
_FRAME_HEADER = 9
_DATA = 0


class DroppingProxy:
    """`127.0.0.1:PORT` (`host`) in front of `upstream` (`host:port`)."""

    def __init__(self, upstream: str, marker: bytes, drop: Callable[[int], bool],
                 min_marks: int = 50):
        self._upstream = upstream.rsplit(':', 1)
        self._marker = marker
        self._drop = drop
        self._min_marks = min_marks
        self._lock = threading.Lock()
        self.pages = 0      # pages of the marked kind seen (dropped or not)
        self.dropped = 0
        self._listener = socket.create_server(('127.0.0.1', 0))
        # Closing a socket does not wake a thread blocked in its accept():
        # the accepting thread looks at `_closing` between short waits.
        self._listener.settimeout(0.1)
        self._closing = threading.Event()
        self.host = f'127.0.0.1:{self._listener.getsockname()[1]}'
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def __enter__(self) -> 'DroppingProxy':
        self._threads[0].start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._closing.set()
        self._threads[0].join(timeout=5)     # no new connections from here on
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)
        for thread in self._threads[1:]:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            client.settimeout(None)
            upstream = socket.create_connection((self._upstream[0], int(self._upstream[1])))
            with self._lock:
                self._sockets += [client, upstream]
            http2 = threading.Event()
            for target in (lambda: self._requests(client, upstream, http2),
                           lambda: self._responses(upstream, client, http2)):
                thread = threading.Thread(target=target, daemon=True)
                self._threads.append(thread)
                thread.start()

    def _requests(self, client: socket.socket, upstream: socket.socket,
                  http2: threading.Event) -> None:
        first = True
        for chunk in _chunks(client):
            if first and chunk.startswith(_HTTP2_PREFACE):
                http2.set()       # before the server can answer it
            first = False
            if not _send(upstream, chunk):
                break
        _close(client, upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket,
                   http2: threading.Event) -> None:
        pending, answered = b'', set()
        for chunk in _chunks(upstream):
            if not http2.is_set():
                if not _send(client, chunk):
                    break
                continue
            pending += chunk
            while len(pending) >= _FRAME_HEADER:
                size = _FRAME_HEADER + int.from_bytes(pending[:3], 'big')
                if len(pending) < size:
                    break
                frame, pending = pending[:size], pending[size:]
                if self._drops(frame, answered) or not _send(client, frame):
                    _close(client, upstream)
                    return
        _close(client, upstream)

    def _drops(self, frame: bytes, answered: set) -> bool:
        """Whether `frame` starts a marked page that is to be dropped."""
        stream = int.from_bytes(frame[5:9], 'big') & 0x7FFFFFFF
        if frame[3] != _DATA or stream in answered:
            return False
        answered.add(stream)
        if frame.count(self._marker) < self._min_marks:
            return False
        with self._lock:
            self.pages += 1
            dropped = bool(self._drop(self.pages))
            self.dropped += dropped
        return dropped


def _chunks(sock: socket.socket):
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
