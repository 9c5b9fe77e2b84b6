"""The sandbox under hostile input and sizes: large outputs in a row, a large input file, bad
file names, full disks, leftovers of a killed worker, and an image older than its driver.

Real Docker engine and sandbox image, as in test_sandbox.py (same fixtures).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import shutil
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from assistd.core.runtime import tune_gc
from assistd.sandbox.build import built_hash, context_dir, context_hash
from assistd.sandbox.containers import OWNER_LABEL, Containers, owner_of, session_name
from assistd.sandbox.manager import InputFile
from assistd.sandbox.paths import MAX_NAME_BYTES, data_path
from tests.conftest import SANDBOX_INSTANCE
from tests.support.memory import reset_peak, status_kb
from tests.support.sandboxes import Sandboxes, Upload, eventually, failed_with, ok, run, timed

MiB = 1024 * 1024


def pattern(seed: str, size: int) -> bytes:
    """``size`` bytes that the sandbox can make too (sha256 in counter mode)."""
    blocks = (size + 31) // 32
    return b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(blocks))[:size]


def write_pattern(path: str, seed: str, size: int) -> str:
    """Code that writes ``pattern(seed, size)`` to ``path`` in the sandbox."""
    return (
        "import hashlib\n"
        f"_blocks = ({size} + 31) // 32\n"
        f"_data = b''.join(hashlib.sha256(f'{seed}:{{i}}'.encode()).digest()"
        " for i in range(_blocks))\n"
        f"_ = open({path!r}, 'wb').write(_data[:{size}])\n"
        "del _data\n"
    )


def open_sockets() -> int:
    """Sockets this process holds open (attach connections to the engine among them)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


@pytest.fixture
def production_gc() -> Iterator[None]:
    """The collector as a server runs it (frozen, high thresholds), and then none at all:
    nothing may depend on garbage collection to close a connection."""
    thresholds = gc.get_threshold()
    tune_gc()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(*thresholds)


# ---- 1: output that adds up ----------------------------------------------------------------


async def test_large_outputs_in_a_row_come_back_without_stalling(
    sandboxes: Sandboxes, production_gc: None
) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    ok(await run(manager, thread, "print('up')"))
    sockets = open_sockets()
    for i, size in enumerate([300_000, 300_000, 300_000, 300_000, MiB]):
        path = f"/mnt/data/out{i}.bin"
        made, elapsed = await timed(run(manager, thread, write_pattern(path, f"r{i}", size)))
        ok(made)
        assert [(f.path, f.skipped) for f in made.files] == [(path, None)]
        assert made.files[0].data == pattern(f"r{i}", size), f"wrong bytes in {path}"
        assert elapsed < 20, f"output {i} took {elapsed:.0f} s"
    assert open_sockets() <= sockets + 1, "attach connections were left open"

    big, elapsed = await timed(
        run(manager, thread, write_pattern("/mnt/data/big.bin", "big", 20 * MiB))
    )
    ok(big)
    assert [f.path for f in big.files] == ["/mnt/data/big.bin"]
    assert big.files[0].data == pattern("big", 20 * MiB)
    assert elapsed < 60, f"a 20 MB output took {elapsed:.0f} s"
    assert ok(await run(manager, thread, "print('still fine')")) == "still fine\n"
    assert open_sockets() <= sockets + 1, "attach connections were left open"


async def test_output_files_over_the_budget_are_skipped_with_the_reason(
    sandboxes: Sandboxes,
) -> None:
    manager = sandboxes.manager(max_file_bytes=4 * MiB, max_files_bytes=5 * MiB)
    thread = sandboxes.thread()
    made = await run(
        manager,
        thread,
        write_pattern("/mnt/data/a.bin", "a", 5 * MiB)
        + write_pattern("/mnt/data/b.bin", "b", 3 * MiB)
        + write_pattern("/mnt/data/c.bin", "c", 3 * MiB),
    )
    ok(made)
    files = {f.path: f for f in made.files}
    assert list(files) == ["/mnt/data/a.bin", "/mnt/data/b.bin", "/mnt/data/c.bin"]
    a, b, c = files.values()
    assert a.data is None
    assert a.skipped is not None
    assert "limit per file" in a.skipped
    assert b.data == pattern("b", 3 * MiB)
    assert b.skipped is None
    assert c.data is None
    assert c.skipped is not None
    assert "limit for all files" in c.skipped


# ---- 7: a file name too long for the sandbox -----------------------------------------------


def test_data_path_shortens_and_cleans_names() -> None:
    taken: set[str] = set()
    long = data_path("dir/" + "é" * 200 + ".csv", "file-a", taken)
    name = long.removeprefix("/mnt/data/")
    assert long.startswith("/mnt/data/")
    assert name.endswith(".csv")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.startswith("é" * 10)
    clash = data_path("dir/" + "é" * 200 + ".csv", "file-b", taken).removeprefix("/mnt/data/")
    assert clash != name
    assert clash.endswith("-file-b.csv")
    assert len(clash.encode()) <= MAX_NAME_BYTES
    assert data_path("a\nb\x00c.txt", "file-c", taken) == "/mnt/data/a_b_c.txt"
    assert data_path(".hidden", "file-d", taken) == "/mnt/data/file-d.hidden"
    assert data_path("..", "file-e", taken) == "/mnt/data/file-e"


async def test_long_file_name_is_placed_shortened_and_refusals_keep_the_session(
    sandboxes: Sandboxes,
) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    path = data_path("q" * 296 + ".csv", "file-long", set())
    table = Upload("file-long", path, b"a,b\n1,2\n")
    listed = await run(
        manager,
        thread,
        "import os\nprint([len(n) for n in os.listdir('/mnt/data')])",
        [table.input],
    )
    assert ok(listed) == f"[{len(path) - len('/mnt/data/')}]\n"
    read = await run(manager, thread, f"print(open({path!r}).read().split())", [table.input])
    assert ok(read) == "['a,b', '1,2']\n"
    container = sandboxes.session_id(thread)

    # A name the sandbox cannot take: the model is told why, and the session goes on.
    raw = Upload("file-raw", "/mnt/data/" + "r" * 300 + ".csv", b"x")
    refused = await run(manager, thread, "kept = 'yes'\nprint('ran')", [raw.input])
    assert refused.logs == "ran\n"
    assert refused.error is None
    assert len(refused.notices) == 1, refused
    assert "could not be placed" in refused.notices[0]
    assert "File name too long" in refused.notices[0]
    assert sandboxes.session_id(thread) == container, "the sandbox was replaced"
    assert ok(await run(manager, thread, "print(kept)", [table.input])) == "yes\n"


# ---- 8: a large input file -----------------------------------------------------------------


class DiskFile:
    """An input file read from disk in chunks, as storage streams it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def chunks(self) -> AsyncIterator[bytes]:
        with self.path.open("rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, MiB):
                yield chunk


async def test_large_input_file_is_streamed_in(sandboxes: Sandboxes, tmp_path: Path) -> None:
    size = 200 * MiB
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with source.open("wb") as fh:
        block = os.urandom(MiB)
        for i in range(size // MiB):
            chunk = i.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            fh.write(chunk)
    manager = sandboxes.manager(memory="1g", data_size="400m", exec_timeout_seconds=60)
    thread = sandboxes.thread()
    ok(await run(manager, thread, "print(1)"))

    tracemalloc.start()
    reset_peak("self")
    before = status_kb("self", "VmRSS")
    big = InputFile("file-big", "/mnt/data/big.bin", DiskFile(source).chunks)
    code = (
        "import hashlib\n"
        "h = hashlib.sha256()\n"
        "with open('/mnt/data/big.bin', 'rb') as fh:\n"
        "    while chunk := fh.read(1 << 20):\n"
        "        h.update(chunk)\n"
        "print(h.hexdigest())\n"
    )
    placed, elapsed = await timed(asyncio.wait_for(manager.execute(thread, code, [big]), 180))
    grown = (status_kb("self", "VmHWM") - before) * 1024
    held = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ok(placed) == digest.hexdigest() + "\n"
    assert elapsed < 120, f"placing 200 MB took {elapsed:.0f} s"
    # Python objects: a chunk, its base64 and the request line; the process also keeps what
    # the allocator's per-thread arenas hold on to.
    assert held < 8 * MiB, f"{held / MiB:.1f} MiB held at once"
    assert grown < 24 * MiB, f"the test process grew by {grown / MiB:.0f} MiB"


# ---- 9: leftovers of a killed worker -------------------------------------------------------

OWNER_SCRIPT = """
import asyncio, sys
from assistd.core.config import SandboxSettings
from assistd.sandbox.manager import SandboxManager

async def main() -> None:
    image, instance, thread = sys.argv[1:4]
    settings = SandboxSettings(image=image, instance=instance, pool_size=0, memory="512m")
    manager = SandboxManager(settings)
    done = await manager.execute(thread, "print('up')", [])
    print(done.logs.strip(), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_start_removes_sandboxes_of_dead_processes_only(
    sandboxes: Sandboxes, engine: docker.DockerClient
) -> None:
    killed_thread, live_thread = sandboxes.thread(), sandboxes.thread()
    reused_thread, foreign_thread = sandboxes.thread(), sandboxes.thread()
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OWNER_SCRIPT,
        sandboxes.image,
        SANDBOX_INSTANCE,
        killed_thread,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 120)
        assert line == b"up\n"
    finally:
        worker.kill()  # kill -9: its close() never runs
        await worker.wait()
    killed = sandboxes.session_id(killed_thread)
    info = sandboxes.inspect(killed)
    assert info is not None
    here, boot, pid, _ = owner_of(os.getpid()).split("/")
    assert info["Config"]["Labels"][OWNER_LABEL].startswith(f"{here}/{boot}/{worker.pid}/")

    live = sandboxes.manager()
    ok(await run(live, live_thread, "print(1)"))
    settings = live.settings
    reused = Containers(settings, owner=f"{here}/{boot}/{pid}/1")  # this pid, another process
    foreign = Containers(settings, owner=f"another-host/{boot}/{worker.pid}/1")
    await asyncio.to_thread(reused.start, session_name(reused_thread), "session")
    await asyncio.to_thread(foreign.start, session_name(foreign_thread), "session")

    fresh = sandboxes.manager()
    await fresh.start()
    await eventually(
        lambda: sandboxes.inspect(killed) is None, 20, "the killed worker's sandbox was removed"
    )
    await eventually(
        lambda: sandboxes.inspect(session_name(reused_thread)) is None,
        20,
        "the sandbox of a reused pid was removed",
    )
    sandboxes.session_id(live_thread)  # a live process's session stays
    sandboxes.session_id(foreign_thread)  # another host's processes are not ours to judge
    assert ok(await run(live, live_thread, "print(2)")) == "2\n"


# ---- 10: full disks ------------------------------------------------------------------------

FILL = """
import errno
def fill(path):
    try:
        with open(path, 'wb') as fh:
            while True:
                fh.write(b'x' * 65536)
                fh.flush()
    except OSError as exc:
        return errno.errorcode[exc.errno]
print(fill('/tmp/fill.bin'), fill('/mnt/data/fill.bin'))
"""


async def test_full_disks_are_reported_and_a_kernel_restart_clears_tmp(
    sandboxes: Sandboxes,
) -> None:
    manager = sandboxes.manager(tmp_size="16m", data_size="16m")
    thread = sandboxes.thread()
    ok(await run(manager, thread, "kept = 1\n_ = open('/mnt/data/keep.txt', 'w').write('kept')"))
    container = sandboxes.session_id(thread)

    filled = await run(manager, thread, FILL)
    assert filled.logs == "ENOSPC ENOSPC\n"
    assert filled.error is None
    notices = " ".join(filled.notices)
    assert "/mnt/data is full" in notices
    assert "/tmp is full" in notices

    # An input file that does not fit: the model is told, and the code still runs.
    upload = Upload("file-no-room", "/mnt/data/no-room.bin", b"y" * 256 * 1024)
    no_room = await run(manager, thread, "print('ran')", [upload.input])
    assert no_room.logs == "ran\n"
    assert any("could not be placed" in n and "full" in n for n in no_room.notices), no_room

    died = await run(manager, thread, "import os\nos.kill(os.getpid(), 9)")
    failed_with(died, "KernelDied")
    after = await run(
        manager,
        thread,
        "import os, tempfile, matplotlib.pyplot\n"
        "print('kept' in globals(), open('/mnt/data/keep.txt').read(), os.listdir('/tmp') != [],"
        " os.path.exists('/tmp/fill.bin'))\n"
        "with tempfile.TemporaryFile() as fh:\n"
        "    print(fh.write(b'works'))\n",
    )
    assert after.error is None, after
    assert after.logs == "False kept True False\n5\n", after
    assert [n for n in after.notices if "full" in n and "/mnt/data" in n], after
    assert not [n for n in after.notices if "/tmp is full" in n], after
    assert sandboxes.session_id(thread) == container, "the sandbox was replaced"

    ok(await run(manager, thread, "import os\nos.remove('/mnt/data/fill.bin')"))


# ---- the image follows its driver ----------------------------------------------------------


def test_image_is_rebuilt_when_its_context_changes(
    engine: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    assert built_hash(engine, sandbox_image) == context_hash(context_dir())
    copy = tmp_path / "ctx"
    shutil.copytree(context_dir(), copy)
    same = context_hash(copy)
    with (copy / "driver.py").open("a") as fh:
        fh.write("\n# changed\n")
    assert context_hash(copy) != same
