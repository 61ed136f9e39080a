"""A TCP proxy in front of a server that can drop every connection through it at once: a
network failure as a client sees it (the server itself stays up). It can also hold what
passes through it (a slow remote, for as long as a test needs) and let it go, or refuse
every connection for a while (an outage)."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.servers import free_port


class DroppingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._gate = threading.Event()
        self._gate.set()
        self.refusing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:  # the server is unreachable: the connection ends at once
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._gate.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source)
            self._close(sink)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def hold(self) -> None:
        """From now on nothing passes either way (connections stay open) until `release`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def drop_all(self) -> None:
        """Cut every connection open through the proxy now (new ones still pass)."""
        with self._lock:
            current = list(self._open)
        self.dropped += len(current)
        for sock in current:
            self._close(sock)

    def refuse(self) -> None:
        """An outage: cut every connection and end new ones at once, until `admit`."""
        self.refusing = True
        self.drop_all()

    def admit(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self._closed = True
        self._gate.set()
        self._listener.close()
        self.drop_all()
