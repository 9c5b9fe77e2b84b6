"""Sandbox containers on a Docker engine, through the docker SDK (blocking calls).

Each container runs the image's driver (``sandbox-image/driver.py``): an IPython kernel that
answers one JSON line per JSON line on the container's attached stdin/stdout. Containers have
no network, so attaching is the only way in. A request attaches, writes its line, reads the
answer and detaches; the container's stdin stays open between attachments, so any worker
process sharing the engine can talk to any session.

Names carry the state, so that every process sharing the engine agrees on it: a thread's
session is ``assistd-sbx-<thread id>`` (the engine refuses a second container of that name),
a warm container is ``assistd-pool-<random>`` until a thread claims it by renaming it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import time
from typing import Any

import docker
import docker.errors
from docker.types import LogConfig, Ulimit

from assistd.core.config import SandboxSettings

log = logging.getLogger(__name__)

LABEL = "io.assistd.sandbox"
INSTANCE_LABEL = "io.assistd.instance"
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


def _raw(sock: Any) -> socket.socket | None:
    """The plain socket under what ``attach_socket`` returns (to set timeouts)."""
    for candidate in (sock, getattr(sock, "_sock", None)):
        if isinstance(candidate, socket.socket):
            return candidate
    return None


class _Attached:
    """An attach socket and the client it came from (closed together)."""

    def __init__(self, sock: Any, api: docker.APIClient, response: Any) -> None:
        self.sock = sock
        self.api = api
        self.response = response
        """Held so that collecting it cannot close the socket while it is in use."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.close()
        with contextlib.suppress(Exception):
            self.api.close()


class Containers:
    """Create, talk to and remove sandbox containers."""

    def __init__(self, settings: SandboxSettings, client: docker.DockerClient | None = None):
        self.settings = settings
        self._client = client

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
        for attempt in range(50):
            try:
                created = api.create_container(
                    self.settings.image,
                    name=name,
                    labels={LABEL: role, INSTANCE_LABEL: self.settings.instance},
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
            sock = self._attach(container_id)
            try:
                api.start(container_id)
                ready = self._read_line(sock, self.settings.start_timeout_seconds)
            finally:
                sock.close()
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

    def list(self) -> list[tuple[str, str]]:
        """(id, name) of every sandbox container on the engine, any state."""
        found = self.client.api.containers(all=True, filters={"label": LABEL})
        return [(c["Id"], c["Names"][0].lstrip("/")) for c in found]

    def new_pool_name(self) -> str:
        return POOL_PREFIX + secrets.token_hex(8)

    # ---- requests -------------------------------------------------------------------------

    def _attach(self, container_id: str) -> Any:
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
        return _Attached(sock, api, response)

    @staticmethod
    def _recv_exact(attached: _Attached, n: int) -> bytes:
        sock = attached.sock
        raw = _raw(sock)
        data = bytearray()
        while len(data) < n:
            chunk = raw.recv(n - len(data)) if raw is not None else sock.read(n - len(data))
            if not chunk:
                raise SandboxGone("the sandbox stopped")
            data += chunk
        return bytes(data)

    def _read_line(self, sock: _Attached, timeout: float) -> dict[str, Any]:
        """Read stdout frames (the engine's 8-byte headers) up to the first newline."""
        raw = _raw(sock.sock)
        deadline = time.monotonic() + timeout
        data = bytearray()
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the sandbox did not answer in time")
            if raw is not None:
                raw.settimeout(left)
            try:
                header = self._recv_exact(sock, 8)
                size = int.from_bytes(header[4:8], "big")
                payload = self._recv_exact(sock, size)
            except TimeoutError as exc:
                raise TimeoutError("the sandbox did not answer in time") from exc
            except OSError as exc:
                raise SandboxGone(f"the sandbox stopped ({exc})") from exc
            if header[0] == 1:  # stdout (2 would be stderr)
                data += payload
        line = bytes(data).split(b"\n", 1)[0]
        try:
            answer: dict[str, Any] = json.loads(line)
        except ValueError as exc:
            raise SandboxGone(f"unreadable answer from the sandbox: {line[:200]!r}") from exc
        return answer

    def request(self, container_id: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request to the container's driver and return its answer."""
        sock = self._attach(container_id)
        try:
            # Attaching to a stopped container succeeds but its stream never ends: check it
            # runs now (a stop after this check ends the attached stream).
            try:
                running = bool(self.client.api.inspect_container(container_id)["State"]["Running"])
            except docker.errors.NotFound:
                running = False
            if not running:
                raise SandboxMissing("the sandbox container has stopped")
            raw = _raw(sock.sock)
            if raw is not None:
                raw.settimeout(timeout)
            line = json.dumps(payload).encode() + b"\n"
            try:
                if raw is not None:
                    raw.sendall(line)
                else:
                    sock.sock.write(line)
            except OSError as exc:
                raise SandboxGone(f"the sandbox stopped ({exc})") from exc
            return self._read_line(sock, timeout)
        finally:
            sock.close()
