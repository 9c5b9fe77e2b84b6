"""The code_interpreter sandbox, at the SandboxManager level, on the real Docker engine.

No fakes: every test starts real ``assistd-sandbox`` containers (the managers' container
starts are only recorded, to know which containers are theirs). A missing engine fails the
tests (CI must not pass without a sandbox). Each test uses threads of its own
(``thread_<uuid>``), and every manager is closed after its test, even when the test fails;
containers named after the test's threads or started by its managers are then removed as a
last resort.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from assistd.sandbox.containers import LABEL, POOL_PREFIX, SESSION_PREFIX, session_name
from tests.support.sandboxes import (
    EXEC_TIMEOUT,
    PNG_MAGIC,
    Sandboxes,
    Upload,
    eventually,
    failed_with,
    in_sandbox_state,
    ok,
    run,
    timed,
)

# ---- state ----------------------------------------------------------------------------------


async def test_state_persists_between_executions(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    first = await run(
        manager,
        thread,
        "import json as js\n"
        "counter = 41\n"
        "def bump(n):\n"
        "    return n + 1\n"
        "with open('/mnt/data/notes.txt', 'w') as fh:\n"
        "    fh.write('kept between calls')\n",
    )
    assert ok(first) == ""
    container = sandboxes.session_id(thread)

    second = await run(
        manager,
        thread,
        "print(bump(counter), js.dumps({'k': 1}), open('/mnt/data/notes.txt').read())",
    )
    assert ok(second) == '42 {"k": 1} kept between calls\n'
    assert second.files == []  # nothing under /mnt/data changed this time
    assert sandboxes.session_id(thread) == container


async def test_input_files_placed_before_code_and_not_resent(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    table = Upload("file-table", "/mnt/data/input.csv", b"a,b\n1,2\n")
    blob = Upload("file-blob", "/mnt/data/nested/dir/blob.bin", bytes(range(256)) * 300)
    code = (
        "import hashlib\n"
        "print(open('/mnt/data/input.csv', 'rb').read())\n"
        "print(hashlib.sha256(open('/mnt/data/nested/dir/blob.bin', 'rb').read()).hexdigest())\n"
    )
    first = await run(manager, thread, code, [table.input, blob.input])
    assert ok(first) == f"{table.data!r}\n{hashlib.sha256(blob.data).hexdigest()}\n"
    assert first.files == [], "placed input files are not outputs of the code"
    assert (table.reads, blob.reads) == (1, 1)
    assert (await in_sandbox_state(manager, thread))["files"] == {
        "file-table": "/mnt/data/input.csv",
        "file-blob": "/mnt/data/nested/dir/blob.bin",
    }

    # The code changes its copy; the next call with the same files must not overwrite it.
    changed = await run(
        manager, thread, "_ = open('/mnt/data/input.csv', 'a').write('3,4\\n')", [table.input]
    )
    assert ok(changed) == ""
    assert [f.path for f in changed.files] == ["/mnt/data/input.csv"]
    extra = Upload("file-extra", "/mnt/data/extra.txt", b"one more")
    again = await run(
        manager,
        thread,
        "print(open('/mnt/data/input.csv').read().splitlines(),\n"
        "      open('/mnt/data/extra.txt').read())\n",
        [table.input, blob.input, extra.input],
    )
    assert ok(again) == "['a,b', '1,2', '3,4'] one more\n"
    assert (table.reads, blob.reads, extra.reads) == (1, 1, 1), "files in place were re-sent"
    assert (await in_sandbox_state(manager, thread))["files"] == {
        "file-table": "/mnt/data/input.csv",
        "file-blob": "/mnt/data/nested/dir/blob.bin",
        "file-extra": "/mnt/data/extra.txt",
    }


async def test_threads_are_isolated(sandboxes: Sandboxes) -> None:
    manager = sandboxes.manager()
    a, b = sandboxes.thread(), sandboxes.thread()
    ok(
        await run(
            manager,
            a,
            "secret_a = 'alpha'\n"
            "_ = open('/mnt/data/only_a.txt', 'w').write('a')\n"
            "_ = open('/tmp/only_a.tmp', 'w').write('a')\n",
        )
    )
    seen_from_b = await run(
        manager,
        b,
        "import os\n"
        "print('secret_a' in globals(), os.path.exists('/mnt/data/only_a.txt'),\n"
        "      os.path.exists('/tmp/only_a.tmp'), sorted(os.listdir('/mnt/data')))\n",
    )
    assert ok(seen_from_b) == "False False False []\n"
    missing = await run(manager, b, "secret_a")
    failed_with(missing, "NameError")
    assert ok(await run(manager, a, "print(secret_a, open('/mnt/data/only_a.txt').read())")) == (
        "alpha a\n"
    )

    info_a = sandboxes.inspect(session_name(a))
    info_b = sandboxes.inspect(session_name(b))
    assert info_a is not None
    assert info_b is not None
    assert info_a["Id"] != info_b["Id"]
    assert info_a["Name"] == f"/{SESSION_PREFIX}{a}"
    assert info_b["Name"] == f"/{SESSION_PREFIX}{b}"


async def test_session_is_found_by_name_from_another_process(sandboxes: Sandboxes) -> None:
    """Two managers stand for two worker processes sharing the engine."""
    first, second = sandboxes.manager(), sandboxes.manager()
    thread = sandboxes.thread()
    ok(await run(first, thread, "shared = 'from the first worker'"))
    container = sandboxes.session_id(thread)
    assert ok(await run(second, thread, "print(shared)")) == "from the first worker\n"
    assert sandboxes.session_id(thread) == container

    # The second one did not start it, so closing it leaves the session alone.
    await second.close()
    assert sandboxes.session_id(thread) == container
    assert ok(await run(first, thread, "print(shared)")) == "from the first worker\n"


# ---- outputs --------------------------------------------------------------------------------


async def test_plot_comes_back_as_png(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    shown = await run(
        manager,
        thread,
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()\n",
    )
    ok(shown)
    assert len(shown.images) == 1, shown
    assert shown.images[0][:8] == PNG_MAGIC
    assert len(shown.images[0]) > 1000


async def test_figure_under_a_non_inline_backend_comes_back_once(sandboxes: Sandboxes) -> None:
    """Model-written code often picks Agg, saves the plot and calls show(): the open figure
    is returned as an image all the same, once."""
    manager, thread = sandboxes.manager(), sandboxes.thread()
    shown = await run(
        manager,
        thread,
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\nplt.savefig('/mnt/data/plot.png')\nplt.show()\n",
    )
    ok(shown)
    assert len(shown.images) == 1, shown
    assert shown.images[0][:8] == PNG_MAGIC
    assert [f.path for f in shown.files] == ["/mnt/data/plot.png"]
    again = await run(manager, thread, "print(len(plt.get_fignums()))\n")
    ok(again)
    assert again.images == []
    assert again.logs.strip() == "0"


async def test_csv_written_comes_back_with_exact_bytes(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    written = await run(
        manager,
        thread,
        "import pandas as pd\n"
        "pd.DataFrame({'city': ['Zürich', 'Oslo'], 'n': [1, 22]})"
        ".to_csv('/mnt/data/out.csv', index=False)\n"
        "_ = open('/mnt/data/raw.bin', 'wb').write(bytes(range(256)))\n",
    )
    ok(written)
    files = {f.path: f for f in written.files}
    assert set(files) == {"/mnt/data/out.csv", "/mnt/data/raw.bin"}
    assert files["/mnt/data/out.csv"].data == "city,n\nZürich,1\nOslo,22\n".encode()
    assert files["/mnt/data/raw.bin"].data == bytes(range(256))
    assert all(f.skipped is None for f in written.files)


async def test_exception_gives_error_and_traceback(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    failed = await run(
        manager,
        thread,
        "def inner():\n    raise ValueError('boom 123')\n\ndef outer():\n    inner()\n\nouter()\n",
    )
    assert failed.error == {"name": "ValueError", "value": "boom 123"}
    assert not failed.notices
    assert not failed.timed_out
    assert "Traceback" in failed.logs
    assert "outer()" in failed.logs
    assert "raise ValueError('boom 123')" in failed.logs
    assert "\x1b[" not in failed.logs, "ANSI colours must be stripped"
    assert ok(await run(manager, thread, "print('after')")) == "after\n"


# ---- hostile code ---------------------------------------------------------------------------


async def test_network_is_unreachable(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    probe = await run(
        manager,
        thread,
        "import errno, os, socket\n"
        "def attempt(host):\n"
        "    try:\n"
        "        socket.create_connection((host, 80), timeout=3).close()\n"
        "    except socket.gaierror:\n"
        "        return 'gaierror'\n"
        "    except OSError as exc:\n"
        "        return errno.errorcode.get(exc.errno, repr(exc))\n"
        "    return 'connected'\n"
        "print(attempt('1.1.1.1'), attempt('example.com'))\n"
        "print(sorted(os.listdir('/sys/class/net')))\n",
    )
    by_ip, by_name = ok(probe).splitlines()[0].split()
    assert by_ip in {"ENETUNREACH", "EHOSTUNREACH"}, probe.logs
    assert by_name == "gaierror", probe.logs
    assert ok(probe).splitlines()[1] == "['lo']"

    uncaught = await run(
        manager, thread, "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)"
    )
    assert "unreachable" in failed_with(uncaught, "OSError")
    assert ok(await run(manager, thread, "print(1)")) == "1\n"


async def test_fork_bomb_is_contained(sandboxes: Sandboxes, engine: docker.DockerClient) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    ok(await run(manager, thread, "import os\nprint(os.getpid())"))
    bomb, elapsed = await timed(run(manager, thread, "import os\nwhile True:\n    os.fork()\n"))
    assert bomb.error is not None or bomb.timed_out, bomb
    assert bomb.error is not None or bomb.notices, bomb
    assert elapsed < 2 * EXEC_TIMEOUT + 30, elapsed

    after = await run(
        manager, thread, "import os\nprint(1)\nprint(sum(p.isdigit() for p in os.listdir('/proc')))"
    )
    one, processes = ok(after).split()
    assert one == "1"
    assert int(processes) <= 5, f"the bomb's processes were left behind: {processes}"
    engine.ping()


async def test_memory_hog_does_not_take_down_the_host(
    sandboxes: Sandboxes, engine: docker.DockerClient
) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    ok(await run(manager, thread, "_ = open('/mnt/data/kept.txt', 'w').write('still here')"))
    info = sandboxes.inspect(session_name(thread))
    assert info is not None
    assert info["HostConfig"]["Memory"] == 512 * 1024**2
    assert info["HostConfig"]["MemorySwap"] == 512 * 1024**2

    hog = await run(
        manager,
        thread,
        "b = bytearray(4 * 1024**3)\nb[::4096] = b'x' * len(b[::4096])\nprint('allocated')\n",
    )
    assert "allocated" not in hog.logs
    assert hog.error is not None, hog
    assert hog.error["name"] == "MemoryError" or any("memory" in n for n in hog.notices), hog

    # The notice says what survived; check that it tells the truth.
    replaced = any("new sandbox" in n.lower() for n in hog.notices)
    logs = ok(await run(manager, thread, "import os\nprint(os.path.exists('/mnt/data/kept.txt'))"))
    assert logs == f"{not replaced}\n", hog.notices
    engine.ping()


async def test_infinite_loop_is_interrupted_and_state_survives(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    ok(await run(manager, thread, "survivor = 'still here'"))
    looped, elapsed = await timed(run(manager, thread, "while True:\n    pass\n"))
    assert looped.timed_out
    assert looped.error is not None
    assert looped.error["name"] in {"KeyboardInterrupt", "TimeoutError"}, looped.error
    assert len(looped.notices) == 1, looped
    assert "time limit" in looped.notices[0]
    assert "still running" in looped.notices[0]
    assert EXEC_TIMEOUT - 0.5 <= elapsed < EXEC_TIMEOUT + 15, elapsed
    assert ok(await run(manager, thread, "print(survivor)")) == "still here\n"


async def test_uninterruptible_loop_restarts_the_kernel(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    ok(await run(manager, thread, "lost = 1\n_ = open('/mnt/data/kept.txt', 'w').write('k')"))
    stubborn, elapsed = await timed(
        run(
            manager,
            thread,
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n",
        )
    )
    assert stubborn.timed_out
    assert len(stubborn.notices) == 1, stubborn
    assert "restarted" in stubborn.notices[0]
    assert "time limit" in stubborn.notices[0]
    assert elapsed < 2 * EXEC_TIMEOUT + 30, elapsed
    after = await run(
        manager, thread, "print('lost' in globals(), open('/mnt/data/kept.txt').read())"
    )
    assert ok(after) == "False k\n"


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A file on the host, outside anything the sandbox should see."""
    secret = Path(f"/tmp/assistd-host-secret-{uuid.uuid4().hex}")
    secret.write_text("top secret")
    yield secret
    secret.unlink()


def host_name() -> str:
    host_file = Path("/etc/hostname")
    return host_file.read_text().strip() if host_file.exists() else socket.gethostname()


async def test_host_files_are_invisible(sandboxes: Sandboxes, host_secret: Path) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    secret = host_secret
    probe = await run(
        manager,
        thread,
        "import os\n"
        f"print(os.path.exists({str(secret)!r}), {secret.name!r} in os.listdir('/tmp'))\n"
        "print(any(os.path.exists(p) for p in ('/var/run/docker.sock', '/run/docker.sock')))\n"
        "print(open('/etc/hostname').read().strip())\n",
    )
    visible, sockets, hostname = ok(probe).splitlines()
    assert visible == "False False"
    assert sockets == "False", "the Docker socket must not be inside the sandbox"
    assert hostname != host_name()
    assert sandboxes.session_id(thread).startswith(hostname)


async def test_filesystem_is_read_only_outside_data_and_tmp(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    probe = await run(
        manager,
        thread,
        "import errno\n"
        "def attempt(path):\n"
        "    try:\n"
        "        with open(path, 'w') as fh:\n"
        "            fh.write('x')\n"
        "    except OSError as exc:\n"
        "        return errno.errorcode.get(exc.errno, repr(exc))\n"
        "    return 'written'\n"
        "for path in ('/etc/evil', '/usr/evil', '/evil', '/opt/assistd/driver.py',\n"
        "             '/tmp/fine', '/mnt/data/fine'):\n"
        "    print(path, attempt(path))\n",
    )
    assert dict(line.split() for line in ok(probe).splitlines()) == {
        "/etc/evil": "EROFS",
        "/usr/evil": "EROFS",
        "/evil": "EROFS",
        "/opt/assistd/driver.py": "EROFS",
        "/tmp/fine": "written",
        "/mnt/data/fine": "written",
    }
    uncaught = await run(manager, thread, "open('/usr/lib/python3/evil.pth', 'w')")
    assert "Read-only file system" in failed_with(uncaught, "OSError")
    # An existing root-owned file is refused before the read-only check.
    passwd = await run(manager, thread, "open('/etc/passwd', 'a').write('evil::0:0::/:/bin/sh')")
    assert passwd.error is not None
    assert passwd.error["name"] in {"PermissionError", "OSError"}, passwd
    assert ok(await run(manager, thread, "print(open('/tmp/fine').read())")) == "x\n"


async def test_code_runs_unprivileged(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    probe = await run(
        manager,
        thread,
        "import json, os\n"
        "status = {}\n"
        "for line in open('/proc/self/status'):\n"
        "    key, _, value = line.partition(':')\n"
        "    status[key] = value.split()\n"
        "try:\n"
        "    os.setuid(0)\n"
        "    became = 'root'\n"
        "except PermissionError:\n"
        "    became = 'refused'\n"
        "print(json.dumps({'status': status, 'uid': os.getuid(), 'setuid': became}))\n",
    )
    found = json.loads(ok(probe))
    status = found["status"]
    assert found["uid"] == 1000
    assert found["setuid"] == "refused"
    assert status["Uid"] == ["1000"] * 4
    assert status["Gid"] == ["1000"] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps][0], 16) == 0, (caps, status[caps])
    assert status["NoNewPrivs"] == ["1"]


# ---- the kernel or container dying ----------------------------------------------------------


async def test_kernel_death_restarts_the_kernel(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    ok(await run(manager, thread, "lost = 1\n_ = open('/mnt/data/survives.txt', 'w').write('yes')"))
    container = sandboxes.session_id(thread)
    died = await run(manager, thread, "import os\nos.kill(os.getpid(), 9)")
    failed_with(died, "KernelDied")
    assert len(died.notices) == 1, died
    assert "kernel died" in died.notices[0]
    after = await run(
        manager, thread, "print('lost' in globals(), open('/mnt/data/survives.txt').read())"
    )
    assert ok(after) == "False yes\n"
    assert sandboxes.session_id(thread) == container, "the container itself was kept"


async def test_container_killed_from_outside(
    sandboxes: Sandboxes, engine: docker.DockerClient
) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    upload = Upload("file-k", "/mnt/data/k.txt", b"input bytes")
    ok(await run(manager, thread, "before = 1", [upload.input]))
    old = sandboxes.session_id(thread)
    await asyncio.to_thread(engine.api.kill, session_name(thread))

    # Right away, while the engine may still be removing the dead container.
    next_one, elapsed = await timed(run(manager, thread, "print('after kill')", [upload.input]))
    assert elapsed < 20, f"the call after the kill hung for {elapsed:.0f} s: {next_one}"
    if next_one.error is not None:
        failed_with(next_one, "SandboxError")
        assert len(next_one.notices) == 1, next_one
        assert "new sandbox" in next_one.notices[0]
    else:
        assert next_one.logs == "after kill\n", next_one
    after = await run(
        manager, thread, "print('before' in globals(), open('/mnt/data/k.txt', 'rb').read())"
    )
    assert ok(after) == "False b'input bytes'\n"
    assert sandboxes.session_id(thread) != old
    await eventually(lambda: sandboxes.inspect(old) is None, 20, "the killed container was removed")


async def test_container_killed_during_execution(
    sandboxes: Sandboxes, engine: docker.DockerClient
) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    ok(await run(manager, thread, "import time"))
    old = sandboxes.session_id(thread)

    async def kill_soon() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(engine.api.kill, old)

    killer = asyncio.create_task(kill_soon())
    cut = await run(manager, thread, "time.sleep(4)\nprint('finished')")
    await killer
    assert "finished" not in cut.logs
    failed_with(cut, "SandboxError")
    assert len(cut.notices) == 1, cut
    assert "new sandbox" in cut.notices[0]
    assert ok(await run(manager, thread, "print('time' in globals())")) == "False\n"
    assert sandboxes.session_id(thread) != old


async def test_drop_removes_the_session(sandboxes: Sandboxes) -> None:
    manager, thread = sandboxes.manager(), sandboxes.thread()
    ok(await run(manager, thread, "x = 1"))
    old = sandboxes.session_id(thread)
    await manager.drop(thread)
    await eventually(lambda: sandboxes.inspect(old) is None, 20, "the dropped session is gone")
    assert ok(await run(manager, thread, "print('x' in globals())")) == "False\n"


# ---- the warm pool and closing --------------------------------------------------------------


async def test_warm_pool_is_claimed_and_refilled(sandboxes: Sandboxes) -> None:
    manager = sandboxes.manager(pool_size=1)
    manager.start_pool()
    await eventually(lambda: len(manager._pool) == 1, 60, "the pool filled")
    warm = manager._pool[0]
    info = sandboxes.inspect(warm)
    assert info is not None
    assert info["Name"].startswith("/" + POOL_PREFIX)
    assert info["Config"]["Labels"][LABEL] == "pool"

    thread = sandboxes.thread()
    assert ok(await run(manager, thread, "print('warm')")) == "warm\n"
    assert sandboxes.session_id(thread) == warm, "the warm container was not claimed"
    claimed = sandboxes.inspect(warm)
    assert claimed is not None
    assert claimed["Name"] == f"/{SESSION_PREFIX}{thread}"

    await eventually(
        lambda: len(manager._pool) == 1 and manager._pool[0] != warm, 60, "the pool refilled"
    )
    fresh = sandboxes.inspect(manager._pool[0])
    assert fresh is not None
    assert fresh["Name"].startswith("/" + POOL_PREFIX)
    assert fresh["State"]["Status"] == "running"


async def test_close_removes_every_container_it_made(sandboxes: Sandboxes) -> None:
    manager = sandboxes.manager(pool_size=1)
    manager.start_pool()
    await eventually(lambda: len(manager._pool) == 1, 60, "the pool filled")
    a, b = sandboxes.thread(), sandboxes.thread()
    ok(await run(manager, a, "x = 1"))
    ok(await run(manager, b, "x = 2"))
    await eventually(
        lambda: len(manager._pool) == 1 and all(c.finished for c in sandboxes.starts(manager)),
        60,
        "the pool refilled",
    )
    names = {c.name for c in sandboxes.starts(manager)} | {session_name(a), session_name(b)}
    ids = {sandboxes.session_id(a), sandboxes.session_id(b), *manager._pool}
    assert len(ids) == 3

    await manager.close()

    def leftovers() -> list[str]:
        return [
            c["Names"][0]
            for c in sandboxes.sandbox_containers()
            if c["Id"] in ids or c["Names"][0].lstrip("/") in names
        ]

    await eventually(lambda: not leftovers(), 15, lambda: f"close() left containers: {leftovers()}")


async def test_close_while_the_pool_is_starting_a_container(sandboxes: Sandboxes) -> None:
    manager = sandboxes.manager(pool_size=1)
    manager.start_pool()
    await eventually(
        lambda: bool(sandboxes.starts(manager)), 10, "the pool began starting a container"
    )
    await manager.close()
    # Whatever was being started when close() ran must not outlive the manager.
    await eventually(
        lambda: all(c.finished for c in sandboxes.starts(manager)),
        60,
        "the pool's start calls returned",
    )
    names = {c.name for c in sandboxes.starts(manager)}

    def leftovers() -> list[str]:
        return [
            c["Names"][0]
            for c in sandboxes.sandbox_containers()
            if c["Names"][0].lstrip("/") in names
        ]

    await eventually(lambda: not leftovers(), 15, lambda: f"close() left containers: {leftovers()}")
