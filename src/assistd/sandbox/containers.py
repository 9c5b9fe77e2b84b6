"""Sandbox containers on a Docker engine, through the docker SDK (blocking calls).

Each container runs the image's driver (``sandbox-image/driver.py``): an IPython kernel that
answers one JSON line per JSON line on the container's attached stdin/stdout. Containers have
no network, so attaching is the only way in. A ``Connection`` attaches, exchanges requests
and answers in turn, and detaches; the container's stdin stays open between attachments, so
any worker process sharing the engine can talk to any session.

Every attach connection is shut down when its user is done with it, not when the garbage
collector gets to it: the engine copies the container's output to every attached stream, and
one stale stream that nobody reads blocks the container's output once its buffers are full.

Names carry the state, so that every process sharing the engine agrees on it: a thread's
session is ``assistd-sbx-<thread id>`` (the engine refuses a second container of that name),
a warm container is ``assistd-pool-<random>`` until a thread claims it by renaming it. The
owner label names the process that started a container, so that the next process of the
same instance on this host can remove what a killed one left behind.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import LogConfig, Ulimit

from assistd.core.config import SandboxSettings

log = logging.getLogger(__name__)

LABEL = "io.assistd.sandbox"
INSTANCE_LABEL = "io.assistd.instance"
OWNER_LABEL = "io.assistd.owner"
SESSION_PREFIX = "assistd-sbx-"
POOL_PREFIX = "assistd-pool-"
SANDBOX_UID = "1000:1000"


class SandboxUnavailable(Exception):
    """No Docker engine, or no sandbox image: code cannot run at all."""


class SandboxGone(Exception):
    """The container stopped (or vanished) before answering."""


class SandboxMissing(SandboxGone):
    """No such container (it idled out, or was removed): nothing was sent to it."""


def session_name(thread_id: str) -> str:
    """The container name of a thread's session."""
    return SESSION_PREFIX + thread_id


# ---- owners ---------------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "-"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), None if there is no such
    process: with the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def owner_of(pid: int) -> str:
    """The owner label of containers started by process ``pid`` of this host."""
    return f"{socket.gethostname()}/{_boot_id()}/{pid}/{process_start(pid) or '-'}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process of this host (and boot) that no longer runs;
    owners on other hosts (or in other containers) are never taken for dead."""
    parts = owner.split("/")
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[2].isdigit():
        return False
    host_boot, pid, started = parts[1], int(parts[2]), parts[3]
    if host_boot != _boot_id():
        return True  # the host rebooted since: every process of that boot is gone
    return process_start(pid) != started


# ---- attach connections ---------------------------------------------------------------------


def _raw(sock: Any) -> socket.socket | None:
    """The plain socket under what ``attach_socket`` returns (to set timeouts)."""
    for candidate in (sock, getattr(sock, "_sock", None)):
        if isinstance(candidate, socket.socket):
            return candidate
    return None


class Connection:
    """An attach connection to one container's driver: requests and answers in turn."""

    def __init__(self, sock: Any, api: docker.APIClient, response: Any) -> None:
        self.sock = sock
        self.api = api
        self.response = response
        """Held so that collecting it cannot close the socket while it is in use."""
        self.raw = _raw(sock)
        self._buffer = bytearray()
        self._stdout = bytearray()

    def close(self) -> None:
        """End the attachment now: the engine sees it go at once, whatever still holds a
        reference to the socket or the HTTP response."""
        if self.raw is not None:
            with contextlib.suppress(OSError):
                self.raw.shutdown(socket.SHUT_RDWR)
        closers = [self.sock.close, self.response.close, self.api.close]
        if self.raw is not None:
            closers.append(self.raw.close)
        for close in closers:
            with contextlib.suppress(Exception):
                close()

    def _recv(self, n: int) -> bytes:
        chunk: bytes = self.raw.recv(n) if self.raw is not None else self.sock.read(n)
        if not chunk:
            raise SandboxGone("the sandbox stopped")
        return chunk

    def _frame(self, deadline: float) -> None:
        """Move one whole frame (the engine's 8-byte header, then the payload) off the
        socket; a stdout payload goes to the line buffer (2 would be stderr)."""
        while True:
            if len(self._buffer) >= 8:
                size = int.from_bytes(self._buffer[4:8], "big")
                if len(self._buffer) >= 8 + size:
                    if self._buffer[0] == 1:
                        self._stdout += self._buffer[8 : 8 + size]
                    del self._buffer[: 8 + size]
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the sandbox did not answer in time")
            if self.raw is not None:
                self.raw.settimeout(left)
            try:
                self._buffer += self._recv(256 * 1024)
            except TimeoutError as exc:
                raise TimeoutError("the sandbox did not answer in time") from exc
            except OSError as exc:
                raise SandboxGone(f"the sandbox stopped ({exc})") from exc

    def read_line(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the driver wrote."""
        deadline = time.monotonic() + timeout
        searched = 0
        while (end := self._stdout.find(b"\n", searched)) < 0:
            searched = len(self._stdout)
            self._frame(deadline)
        line = bytes(self._stdout[:end])
        del self._stdout[: end + 1]
        try:
            answer: dict[str, Any] = json.loads(line)
        except ValueError as exc:
            raise SandboxGone(f"unreadable answer from the sandbox: {line[:200]!r}") from exc
        return answer

    def send(self, line: bytes, timeout: float) -> None:
        try:
            if self.raw is not None:
                self.raw.settimeout(timeout)
                self.raw.sendall(line)
            else:
                self.sock.write(line)
        except TimeoutError as exc:
            raise TimeoutError("the sandbox did not take the request in time") from exc
        except OSError as exc:
            raise SandboxGone(f"the sandbox stopped ({exc})") from exc

    def call(
        self, payload: dict[str, Any], timeout: float, data: bytes | None = None
    ) -> dict[str, Any]:
        """Send one request (``data`` goes in its ``data`` field, base64-encoded) and return
        its answer; answers to other requests, left by an earlier attachment, are skipped."""
        request_id = secrets.token_hex(6)
        deadline = time.monotonic() + timeout
        line = json.dumps({**payload, "id": request_id}).encode()
        if data is not None:
            # Spliced in as bytes: a chunk is copied twice on its way out, not five times.
            line = b"".join((line[:-1], b', "data": "', base64.b64encode(data), b'"}'))
        self.send(line + b"\n", timeout)
        del line
        while True:
            answer = self.read_line(max(0.0, deadline - time.monotonic()))
            if answer.get("id") == request_id:
                return answer


class Containers:
    """Create, talk to and remove sandbox containers."""

    def __init__(
        self,
        settings: SandboxSettings,
        client: docker.DockerClient | None = None,
        owner: str | None = None,
    ):
        self.settings = settings
        self._client = client
        self.owner = owner or owner_of(os.getpid())
        """The owner label of the containers this process starts."""

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env()
                self._client.ping()
            except Exception as exc:
                self._client = None
                raise SandboxUnavailable(f"no Docker engine reachable: {exc}") from exc
        return self._client

    # ---- lifecycle ------------------------------------------------------------------------

    def _host_config(self) -> Any:
        s = self.settings
        tmpfs_opts = "rw,nosuid,nodev,uid=1000,gid=1000"
        return self.client.api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={
                "/tmp": f"{tmpfs_opts},size={s.tmp_size},mode=0700",
                "/mnt/data": f"{tmpfs_opts},size={s.data_size},mode=0755",
            },
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=s.pids_limit,
            mem_limit=s.memory,
            memswap_limit=s.memory,
            nano_cpus=int(s.cpus * 1e9),
            ulimits=[Ulimit(name="nofile", soft=1024, hard=1024)],
            auto_remove=True,
            init=True,
            log_config=LogConfig(type="none"),
            runtime=s.runtime,
        )

    def start(self, name: str, role: str) -> str:
        """Create and start a container, wait for its kernel; return the container id."""
        api = self.client.api
        labels = {LABEL: role, INSTANCE_LABEL: self.settings.instance, OWNER_LABEL: self.owner}
        for attempt in range(50):
            try:
                created = api.create_container(
                    self.settings.image,
                    name=name,
                    labels=labels,
                    user=SANDBOX_UID,
                    stdin_open=True,
                    detach=True,  # else the SDK sets StdinOnce: one detach would end stdin
                    tty=False,
                    network_disabled=True,
                    environment={
                        "ASSISTD_SANDBOX_IDLE_SECONDS": str(int(self.settings.idle_seconds))
                    },
                    host_config=self._host_config(),
                )
                break
            except docker.errors.ImageNotFound as exc:
                raise SandboxUnavailable(
                    f"the sandbox image {self.settings.image} is missing: "
                    "run `assistd sandbox build`"
                ) from exc
            except docker.errors.APIError as exc:
                # The name is still held by a container being removed: wait for it.
                if exc.status_code != 409 or attempt == 49 or self.find(name):
                    raise
                time.sleep(0.1)
        container_id: str = created["Id"]
        try:
            # Attach before starting, so the driver's first line (its kernel is ready) is seen.
            connection = self._attach(container_id)
            try:
                api.start(container_id)
                ready = connection.read_line(self.settings.start_timeout_seconds)
            finally:
                connection.close()
            if not ready.get("ready"):
                raise SandboxGone(f"sandbox did not start: {ready}")
        except BaseException:
            self.remove(container_id)
            raise
        return container_id

    def find(self, name: str) -> str | None:
        """The id of the running container called ``name`` (waiting briefly for one that
        another process is starting)."""
        for _ in range(100):
            try:
                info = self.client.api.inspect_container(name)
            except docker.errors.NotFound:
                return None
            status = info["State"]["Status"]
            if status == "running":
                container_id: str = info["Id"]
                return container_id
            if status != "created":
                self.remove(info["Id"])
                return None
            time.sleep(0.05)
        return None

    def claim(self, container_id: str, name: str) -> bool:
        """Rename a warm container to ``name``; False when that name is taken."""
        try:
            self.client.api.rename(container_id, name)
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return False
            raise
        return True

    def remove(self, container_id: str) -> None:
        """Kill and remove a container (no error if it is already gone)."""
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # removal already in progress
                log.warning("removing sandbox %s: %s", container_id[:12], exc)

    def remove_orphans(self) -> list[str]:
        """Remove this instance's containers whose owner (a process of this host) is dead;
        return their names. Containers of live processes and of other hosts stay."""
        found = self.client.api.containers(
            all=True, filters={"label": [LABEL, f"{INSTANCE_LABEL}={self.settings.instance}"]}
        )
        removed: list[str] = []
        for container in found:
            owner = (container.get("Labels") or {}).get(OWNER_LABEL)
            if owner and owner_is_dead(owner):
                self.remove(container["Id"])
                removed.append(container["Names"][0].lstrip("/"))
        return removed

    def list(self) -> list[tuple[str, str]]:
        """(id, name) of every sandbox container on the engine, any state."""
        found = self.client.api.containers(all=True, filters={"label": LABEL})
        return [(c["Id"], c["Names"][0].lstrip("/")) for c in found]

    def new_pool_name(self) -> str:
        return POOL_PREFIX + secrets.token_hex(8)

    # ---- requests -------------------------------------------------------------------------

    def _attach(self, container_id: str) -> Connection:
        """An attached stdin/stdout socket, on a connection of its own: an attach takes
        over its HTTP connection, which must never go back to the shared client's pool."""
        api = docker.APIClient(
            version=self.client.api.api_version, **docker.utils.kwargs_from_env()
        )
        try:
            # attach_socket() without dropping the HTTP response (on a Unix socket the SDK
            # cannot pin it to the socket, and its collection would close the connection).
            response = api.post(
                api._url("/containers/{0}/attach", container_id),
                None,
                params={"stdin": 1, "stdout": 1, "stream": 1},
                stream=True,
                headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            )
            sock = api._get_raw_response_socket(response)
        except docker.errors.NotFound as exc:
            api.close()
            raise SandboxMissing("the sandbox container is gone") from exc
        except docker.errors.APIError as exc:
            api.close()
            raise SandboxGone(f"cannot attach to the sandbox: {exc}") from exc
        return Connection(sock, api, response)

    def connect(self, container_id: str) -> Connection:
        """Attach to a running container (``SandboxMissing`` when it is not running)."""
        connection = self._attach(container_id)
        try:
            # Attaching to a stopped container succeeds but its stream never ends: check it
            # runs now (a stop after this check ends the attached stream).
            try:
                state = self.client.api.inspect_container(container_id)["State"]
                running = bool(state["Running"])
            except docker.errors.NotFound:
                running = False
            if not running:
                raise SandboxMissing("the sandbox container has stopped")
        except BaseException:
            connection.close()
            raise
        return connection

    def request(self, container_id: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request to the container's driver and return its answer."""
        connection = self.connect(container_id)
        try:
            return connection.call(payload, timeout)
        finally:
            connection.close()
