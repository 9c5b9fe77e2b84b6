"""The sandbox driver: one IPython kernel, driven by JSON lines over stdin/stdout.

It runs inside the sandbox container as its main process. The container has no network, so
the host talks to it through the container's attached stdin/stdout: one JSON request per
line in, one JSON response per line out.

Requests (each may carry an ``id``, echoed in its answer)::

    {"op": "ping"}
    {"op": "state"}                                   -> which uploaded files are in place
    {"op": "put", "file_id": "file-1", "path": "/mnt/data/x.csv", "offset": 0,
     "data": "<base64 chunk>", "last": true}          -> one chunk of an input file
    {"op": "exec", "code": "print(1)", "timeout": 60, "max_file_bytes": 1, "max_files_bytes": 2}
    {"op": "get", "path": "/mnt/data/out.csv", "offset": 0, "size": 1048576}
    {"op": "drop", "file_id": "file-1"}               -> remove an input file placed before

An ``exec`` answers with the text output (``logs``), PNG images (``images``, base64), the
error if any, whether the time limit was hit or the kernel had to be restarted, the free
space of /mnt/data and /tmp, and the files under /mnt/data that the code created or changed
(``files``: path and size, or why they are skipped); their bytes are then read with ``get``,
in chunks, so that no line is larger than a chunk (or the capped logs and images).

A request the driver cannot carry out (a bad path, a full disk) answers ``ok: false`` with
the reason; ``fatal: true`` only when the kernel cannot be started.

The driver exits (and the container is removed) when no request arrives for
``ASSISTD_SANDBOX_IDLE_SECONDS``. This file runs on the image's own Python (Debian's
jupyter_client), so it uses nothing but the standard library and jupyter_client.
"""

import base64
import contextlib
import errno
import json
import os
import queue
import re
import select
import shutil
import signal
import sys
import time

from jupyter_client import KernelManager

DATA = "/mnt/data"
IDLE_SECONDS = float(os.environ.get("ASSISTD_SANDBOX_IDLE_SECONDS", "3600"))
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_FILES_BYTES = 128 * 1024 * 1024
MAX_GET_BYTES = 4 * 1024 * 1024
MAX_IMAGES_CHARS = 16 * 1024 * 1024
"""Base64 of the images one execution returns; more are dropped, with a line in the logs."""
MAX_LOG_CHARS = 200_000
INTERRUPT_GRACE = 5.0
STRAY_LIMIT = 16
"""More processes than this left behind by code (beyond the kernel) are killed after it ran."""
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# The protocol owns the original stdin/stdout; everything else that writes to fd 1 or reads
# fd 0 (the kernel, programs it starts) gets /dev/null or stderr instead.
_proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
_proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0)
os.dup2(2, 1)

# Run silently in every new kernel: load the usual libraries (without binding names) so the
# first cell that imports them is quick.
PRELUDE = """
import importlib as _il
for _m in ("numpy", "pandas", "matplotlib.pyplot"):
    try:
        _il.import_module(_m)
    except Exception:
        pass
del _il, _m
"""

uploaded = {}  # file_id -> path written by "put"
receiving = {}  # file_id -> (path, bytes written so far) of a file being put


def send(obj):
    _proto_out.write(json.dumps(obj).encode() + b"\n")


class Kernel:
    def __init__(self):
        self.km = None
        self.kc = None
        self.start()

    def start(self):
        cache = os.environ.get("MPLCONFIGDIR")
        if cache and os.path.isdir("/opt/assistd/mpl"):
            with contextlib.suppress(OSError):
                shutil.copytree("/opt/assistd/mpl", cache, dirs_exist_ok=True)
        self.km = KernelManager(transport="ipc", ip=os.path.join("/tmp", "kernel"))
        self.km.start_kernel(
            cwd=DATA,
            extra_arguments=["--HistoryManager.enabled=False", "--IPKernelApp.matplotlib=inline"],
            stdin=_null,
            stdout=_null,
            stderr=_null,
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        # The inline backend draws figures at a readable size; nothing shows before code runs.
        self.quiet(PRELUDE)

    def quiet(self, code):
        msg_id = self.kc.execute(code, store_history=False, silent=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return

    def stop(self):
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        except Exception:
            pass

    def restart(self):
        """A new kernel, on an emptied /tmp: what the old one left there (a full /tmp
        included) must not keep the new one from starting or working."""
        self.stop()
        kill_strays()
        clear_tmp()
        self.start()

    def pid(self):
        try:
            return self.km.provisioner.pid  # jupyter_client >= 7
        except AttributeError:
            return self.km.kernel.pid


def clear_tmp():
    for entry in os.listdir("/tmp"):
        path = os.path.join("/tmp", entry)
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def disk(path):
    """(free bytes, size in bytes) of the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def strays(keep=()):
    mine = {os.getpid(), os.getppid(), 1, *keep}
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in mine]


def kill_strays(keep=()):
    """Kill every process of the sandbox but this driver, its parent (init) and ``keep``:
    what code left behind (a fork bomb's children, background programs)."""
    for _ in range(3):  # a fork bomb may fork again while we kill
        found = strays(keep)
        if not found:
            return
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def snapshot():
    seen = {}
    for root, dirs, files in os.walk(DATA):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            seen[path] = (st.st_size, st.st_mtime_ns)
    return seen


def changed_files(before, max_file, max_files):
    """The files the code created or changed, each with its size or why it is skipped
    (over the per-file cap, or over what is left of the execution's budget)."""
    out, budget = [], max_files
    for path, (size, mtime) in sorted(snapshot().items()):
        if before.get(path) == (size, mtime):
            continue
        entry = {"path": path, "size": size}
        if size > max_file:
            entry["skipped"] = f"{size} bytes, over the {max_file}-byte limit per file"
        elif size > budget:
            entry["skipped"] = (
                f"{size} bytes, over what is left ({budget} bytes) of the {max_files}-byte "
                "limit for all files of one execution"
            )
        else:
            budget -= size
        out.append(entry)
    return out


# Run after each cell: a figure the code left open under a non-inline backend (Agg, with
# savefig and show) is shown once and closed; the inline backend has closed its own already.
FIGURES = """
def _assistd_figures():
    import sys
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    from IPython.display import display
    for number in plt.get_fignums():
        figure = plt.figure(number)
        display(figure)
        plt.close(figure)
_assistd_figures()
del _assistd_figures
"""


def open_figures(kernel, images, logs):
    """Add the PNGs of figures left open by the last cell to ``images``."""
    msg_id = kernel.kc.execute(FIGURES, store_history=False, silent=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            if not kernel.km.is_alive():
                return
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "display_data" and "image/png" in content.get("data", {}):
            png = content["data"]["image/png"]
            if sum(map(len, images)) + len(png) <= MAX_IMAGES_CHARS:
                images.append(png)
            else:
                logs.append("[an image was not returned: the images are over the limit]\n")
        elif kind == "status" and content.get("execution_state") == "idle":
            return


def execute(kernel, code, timeout, max_file=MAX_FILE_BYTES, max_files=MAX_FILES_BYTES):
    if not kernel.km.is_alive():
        kernel.restart()
    before = snapshot()
    started = time.time()
    logs, images = [], []
    error = None
    timed_out = restarted = died = False
    msg_id = kernel.kc.execute(code, store_history=True)
    deadline = started + timeout
    while True:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=min(0.5, max(0.01, deadline - time.time())))
        except queue.Empty:
            if not kernel.km.is_alive():
                died = True
                kernel.restart()
                break
            if time.time() < deadline:
                continue
            if not timed_out:
                timed_out = True
                kill_strays(keep=(kernel.pid(),))
                kernel.km.interrupt_kernel()
                deadline = time.time() + INTERRUPT_GRACE
                continue
            restarted = True  # the interrupt did not stop it
            kernel.restart()
            break
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            logs.append(content.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            data = content.get("data", {})
            if "image/png" in data:
                if sum(map(len, images)) + len(data["image/png"]) <= MAX_IMAGES_CHARS:
                    images.append(data["image/png"])
                else:
                    logs.append("[an image was not returned: the images are over the limit]\n")
            elif "text/plain" in data:
                logs.append(data["text/plain"] + "\n")
        elif kind == "error":
            trace = ANSI.sub("", "\n".join(content.get("traceback", [])))
            error = {"name": content.get("ename", ""), "value": content.get("evalue", "")}
            logs.append(trace + "\n" if trace else f"{error['name']}: {error['value']}\n")
        elif kind == "status" and content.get("execution_state") == "idle":
            break
    if timed_out or len(strays((kernel.pid(),))) >= STRAY_LIMIT:
        kill_strays(keep=(kernel.pid(),))
    if not (died or restarted):
        open_figures(kernel, images, logs)
    text = "".join(logs)
    if len(text) > MAX_LOG_CHARS:
        text = text[: MAX_LOG_CHARS // 2] + "\n...\n" + text[-MAX_LOG_CHARS // 2 :]
    if timed_out and not restarted and error is None:
        # Killed strays may have ended the code before the interrupt landed.
        error = {"name": "TimeoutError", "value": "interrupted"}
    data_free, data_size = disk(DATA)
    tmp_free, tmp_size = disk("/tmp")
    return {
        "ok": True,
        "logs": text,
        "images": images,
        "error": error,
        "timed_out": timed_out,
        "restarted": restarted,
        "kernel_died": died,
        "files": changed_files(before, max_file, max_files),
        "data_free": data_free,
        "data_size": data_size,
        "tmp_free": tmp_free,
        "tmp_size": tmp_size,
        "ms": round((time.time() - started) * 1000, 1),
    }


def refusal(exc):
    """The answer to a request the sandbox cannot carry out (the session stays usable)."""
    code = errno.errorcode.get(exc.errno, "") if isinstance(exc, OSError) else ""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return {"ok": False, "error": text, "errno": code}


def put(request):
    """Write one chunk of an input file; the first chunk (offset 0) starts it afresh."""
    file_id, data = request["file_id"], base64.b64decode(request["data"])
    path = os.path.normpath(request["path"])
    if not path.startswith(DATA + "/"):
        return {"ok": False, "error": "path outside " + DATA}
    offset = int(request.get("offset", 0))
    if offset == 0:
        uploaded.pop(file_id, None)
        receiving[file_id] = (path, 0)
    elif receiving.get(file_id) != (path, offset):
        return {"ok": False, "error": f"chunk at {offset} out of order"}
    try:
        if offset == 0:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "r+b" if offset else "wb") as fh:
            fh.seek(offset)
            fh.write(data)
    except OSError as exc:
        receiving.pop(file_id, None)
        with contextlib.suppress(OSError):
            os.unlink(path)  # half a file is worse than none
        return refusal(exc)
    receiving[file_id] = (path, offset + len(data))
    if request.get("last"):
        del receiving[file_id]
        uploaded[file_id] = path
    return {"ok": True, "path": path}


def drop(request):
    """Remove an input file placed before (its owner deleted it); nothing if it is gone."""
    path = uploaded.pop(request["file_id"], None)
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return {"ok": True}


def get(request):
    """A chunk of a file under /mnt/data (``eof`` once the end is reached)."""
    path = os.path.normpath(request["path"])
    if not path.startswith(DATA + "/"):
        return {"ok": False, "error": "path outside " + DATA}
    size = max(0, min(int(request.get("size", MAX_GET_BYTES)), MAX_GET_BYTES))
    try:
        with open(path, "rb") as fh:
            fh.seek(int(request.get("offset", 0)))
            data = fh.read(size)
    except OSError as exc:
        return refusal(exc)
    return {"ok": True, "data": base64.b64encode(data).decode(), "eof": len(data) < size}


def main():
    t0 = time.time()
    kernel = Kernel()
    send({"ready": True, "kernel_start_ms": round((time.time() - t0) * 1000, 1)})
    buffered, searched = bytearray(), 0
    while True:
        end = buffered.find(b"\n", searched)
        if end < 0:
            searched = len(buffered)
            ready, _, _ = select.select([_proto_in], [], [], IDLE_SECONDS)
            if not ready:
                break  # idle for too long: the container ends and is removed
            chunk = _proto_in.read(1 << 20)
            if not chunk:
                break
            buffered += chunk
            continue
        line = bytes(buffered[:end])
        del buffered[: end + 1]
        searched = 0
        if not line.strip():
            continue
        request = {}
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "exec":
                try:
                    reply = execute(
                        kernel,
                        request["code"],
                        float(request.get("timeout", 60)),
                        int(request.get("max_file_bytes", MAX_FILE_BYTES)),
                        int(request.get("max_files_bytes", MAX_FILES_BYTES)),
                    )
                except Exception as exc:
                    # No kernel could be started: this sandbox cannot run code any more.
                    reply = {"ok": False, "fatal": True, "error": f"{type(exc).__name__}: {exc}"}
            elif op == "put":
                reply = put(request)
            elif op == "get":
                reply = get(request)
            elif op == "drop":
                reply = drop(request)
            elif op == "state":
                reply = {"ok": True, "files": uploaded}
            elif op == "ping":
                reply = {"ok": True, "alive": kernel.km.is_alive()}
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # report, keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if isinstance(request, dict) and "id" in request:
            reply["id"] = request["id"]
        send(reply)
    kernel.stop()


if __name__ == "__main__":
    sys.exit(main())
