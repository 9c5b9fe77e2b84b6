"""``assistd serve --processes N``: N server processes on one port, each with its own listening
socket (``SO_REUSEPORT``), kept alive by a small supervisor.

With one socket shared by every process (uvicorn's own supervisor), the process that wakes
first accepts every pending connection at once: a burst of new clients lands on one process
while the others idle (measured: three quarters of a 500-run burst on one of two). With a
socket each, the kernel spreads new connections over the processes evenly.

The supervisor (this process) binds the port first without listening, so the port is taken
for the server's whole life and a port of 0 resolves once; it starts the processes, replaces
one that dies, stops when one cannot start at all (it would fail the same way again), and
stops them all on SIGTERM or SIGINT. Where the kernel does not balance ``SO_REUSEPORT``
(not Linux), ``serve`` keeps uvicorn's supervisor.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("assistd.serve")

STARTUP_FAILURE = 3
"""uvicorn's exit status when the application did not start (``uvicorn.config``)."""

APP = "assistd.app:app_from_environment"


def balanced() -> bool:
    """Whether this platform spreads connections over ``SO_REUSEPORT`` sockets."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuseport_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (listening if asked)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        if listen:
            sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _serve_one(host: str, port: int, options: dict[str, Any]) -> None:
    """One server process: its own listening socket, the app built from the environment."""
    import uvicorn

    sock = reuseport_socket(host, port, listen=True)
    config = uvicorn.Config(APP, factory=True, **options)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Starts ``n`` server processes on ``host:port`` and keeps them running."""

    def __init__(self, n: int, host: str, port: int, options: dict[str, Any]) -> None:
        self.n = n
        self.host = host
        self.options = options
        # Held (bound, not listening: it takes no connections) until the server stops.
        self._reserved = reuseport_socket(host, port, listen=False)
        self.port: int = self._reserved.getsockname()[1]
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._stop = threading.Event()
        self.failed = False

    def _spawn(self) -> BaseProcess:
        process = self._context.Process(
            target=_serve_one, args=(self.host, self.port, self.options), daemon=False
        )
        process.start()
        return process

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop.set()

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (0), or until a process fails to start (1)."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._processes = [self._spawn() for _ in range(self.n)]
            while not self._stop.wait(0.5):
                self._keep_alive()
        finally:
            self._stop_all()
            self._reserved.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self.failed else 0

    def _keep_alive(self) -> None:
        for i, process in enumerate(self._processes):
            if process.is_alive() or self._stop.is_set():
                continue
            process.join()
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and process.pid is not None:
                from prometheus_client import multiprocess

                # Its counters stay in the sums; its live gauges (sandboxes held) go.
                multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
            if process.exitcode == STARTUP_FAILURE:
                log.error("server process %s failed to start; stopping", process.pid)
                self.failed = True
                self._stop.set()
                return
            log.warning(
                "server process %s ended (exit status %s); starting another",
                process.pid,
                process.exitcode,
            )
            self._processes[i] = self._spawn()

    def _stop_all(self, grace: float = 30.0) -> None:
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self._processes:
            process.join(grace)
            if process.is_alive():
                log.warning(
                    "server process %s did not stop in %.0f s; killing it", process.pid, grace
                )
                process.kill()
                process.join()
