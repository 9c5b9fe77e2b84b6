"""Sandbox benchmark: first and warm executions beside a bare ``docker run``.

    python bench/sandbox.py [--rounds 10] [--warmup 1] [--image assistd-sandbox:latest]

Drives ``SandboxManager`` directly (no server, no database) against the local Docker engine
and measures, in the same run and interleaved round by round (the order rotated each round,
so that machine noise hits every measure alike):

* **cold first execution**: a manager with ``pool_size=0``; wall time of
  ``execute(new thread, "print(1)")``, which creates and starts a container and waits for its
  kernel (the driver loads numpy, pandas and matplotlib before it says it is ready);
* **first execution with a warm pool**: a manager with ``pool_size=1`` whose pool is full
  before timing; wall time of ``execute(new thread, "print(1)")``: claiming the warm container
  (a rename) and running the code. The pool starts its replacement at once, in the background,
  as it does in production, so that start competes with the measured execution for the CPUs;
* **warm execution**: once the pool is full again, ``x = 1`` (not timed) then
  ``x += 1; print(x)`` (timed) on the same thread; beside it the driver's ``ping`` round trip
  (attach, one JSON line each way, detach; no kernel), the floor of any request;
* **bare docker run**: ``docker run --rm --network none IMAGE true`` through the docker SDK
  (``client.containers.run``) and through the ``docker`` CLI when it is installed.

Every measure starts from a quiet engine: the pool is full and nothing else is starting. A
warm-up round (not recorded) comes first. Prints p50/p95/mean per measure, the ratios of the
p50s and PASS/FAIL against the targets (p50): warm execution <= 50 ms, first execution with a
warm pool <= 400 ms.

Every container the benchmark starts carries its run id in its name (the threads are
``bench<id>-...``, the pool containers ``assistd-pool-bench<id>-...``, the bare runs
``assistd-bench<id>-...``); at exit, including on Ctrl-C and SIGTERM, the managers are closed
and any container whose name holds the run id is removed. Sessions also end themselves after
``--idle`` seconds, should the benchmark be killed outright.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import docker
import docker.errors
from _stack import log, percentile, sigterm_as_interrupt

from assistd.core.config import SandboxSettings
from assistd.sandbox.containers import POOL_PREFIX, Containers, session_name
from assistd.sandbox.manager import Execution, SandboxManager

TARGET_WARM_MS = 50.0
TARGET_POOLED_MS = 400.0

GAP_S = 0.2
"""Pause before each measure, once the engine is quiet."""
POOL_WAIT_S = 180.0

COLD = "cold first execution (pool_size=0)"
POOLED = "first execution, warm pool"
WARM = "warm execution (same thread)"
PING = "warm ping round trip (no kernel)"
SDK = "bare docker run (SDK)"
CLI = "bare docker run (CLI)"


class BenchContainers(Containers):
    """Pool containers named with the run id, so the final sweep can find them."""

    def __init__(self, settings: SandboxSettings, run_id: str) -> None:
        super().__init__(settings)
        self.run_id = run_id

    def new_pool_name(self) -> str:
        return f"{POOL_PREFIX}bench{self.run_id}-{secrets.token_hex(4)}"


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str
    cold: SandboxManager
    pooled: SandboxManager
    client: docker.DockerClient
    cli: str | None
    samples: dict[str, list[float]] = field(default_factory=dict)
    counter: int = 0

    def name(self, what: str) -> str:
        self.counter += 1
        return f"bench{self.run_id}-{what}-{self.counter}"

    def record(self, measure: str, ms: float, keep: bool) -> None:
        if keep:
            self.samples.setdefault(measure, []).append(ms)

    async def quiet(self) -> None:
        """Wait until the warm pool is full (nothing starting in the background)."""
        # SandboxManager has no public view of its pool: poll the private list (read only).
        deadline = time.monotonic() + POOL_WAIT_S
        while len(self.pooled._pool) < self.pooled.settings.pool_size:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the warm pool did not fill within {POOL_WAIT_S:g} s")
            task = self.pooled._pool_task
            if task is not None and task.done():
                raise RuntimeError(f"the pool task ended: {task!r}")
            await asyncio.sleep(0.02)
        await asyncio.sleep(GAP_S)

    # ---- measures ---------------------------------------------------------------------------

    async def measure_cold(self, keep: bool) -> None:
        thread = self.name("cold")
        try:
            t0 = time.perf_counter()
            result = await self.cold.execute(thread, "print(1)", [])
            ms = (time.perf_counter() - t0) * 1000
            check(result, "1\n", COLD)
            self.record(COLD, ms, keep)
        finally:
            await self.cold.drop(thread)

    async def measure_pooled(self, keep: bool) -> None:
        thread = self.name("pool")
        try:
            t0 = time.perf_counter()
            result = await self.pooled.execute(thread, "print(1)", [])
            ms = (time.perf_counter() - t0) * 1000
            check(result, "1\n", POOLED)
            self.record(POOLED, ms, keep)

            await self.quiet()  # the pool's replacement has started
            check(await self.pooled.execute(thread, "x = 1", []), "", WARM)
            t0 = time.perf_counter()
            result = await self.pooled.execute(thread, "x += 1; print(x)", [])
            ms = (time.perf_counter() - t0) * 1000
            check(result, "2\n", WARM)
            self.record(WARM, ms, keep)

            containers = self.pooled.containers
            container_id = await asyncio.to_thread(containers.find, session_name(thread))
            if container_id is None:
                raise RuntimeError(f"the session of {thread} is gone")
            t0 = time.perf_counter()
            answer = await asyncio.to_thread(containers.request, container_id, {"op": "ping"}, 30)
            ms = (time.perf_counter() - t0) * 1000
            if not answer.get("ok"):
                raise RuntimeError(f"ping failed: {answer}")
            self.record(PING, ms, keep)
        finally:
            await self.pooled.drop(thread)

    # The bare runs are synchronous on purpose: they block the event loop, which has nothing
    # else to do meanwhile (the pool is full), so no thread hand-off is measured.

    def measure_sdk(self, keep: bool) -> None:
        name = self.name("run").replace("bench", "assistd-bench", 1)
        t0 = time.perf_counter()
        self.client.containers.run(
            self.args.image, "true", remove=True, network_mode="none", name=name
        )
        self.record(SDK, (time.perf_counter() - t0) * 1000, keep)

    def measure_cli(self, keep: bool) -> None:
        assert self.cli is not None
        name = self.name("cli").replace("bench", "assistd-bench", 1)
        argv = [self.cli, "run", "--rm", "--network", "none", "--name", name, self.args.image]
        t0 = time.perf_counter()
        subprocess.run([*argv, "true"], check=True, stdout=subprocess.DEVNULL)
        self.record(CLI, (time.perf_counter() - t0) * 1000, keep)


def check(result: Execution, logs: str, what: str) -> None:
    if result.error is not None or result.notices or result.logs != logs:
        raise RuntimeError(
            f"{what}: unexpected result: logs={result.logs!r} error={result.error} "
            f"notices={result.notices}"
        )


async def measure(args: argparse.Namespace, bench: Bench) -> None:
    steps: list[tuple[str, Callable[[bool], Awaitable[None] | None]]] = [
        ("cold", bench.measure_cold),
        ("pooled+warm", bench.measure_pooled),
        ("sdk run", bench.measure_sdk),
    ]
    if bench.cli is not None:
        steps.append(("cli run", bench.measure_cli))
    bench.pooled.start_pool()
    total = args.warmup + args.rounds
    for r in range(total):
        keep = r >= args.warmup
        shift = r % len(steps)
        order = steps[shift:] + steps[:shift]
        started = time.monotonic()
        for _, step in order:
            await bench.quiet()
            pending = step(keep)
            if pending is not None:
                await pending
        label = f"round {r + 1 - args.warmup}/{args.rounds}" if keep else "warm-up round"
        names = ", ".join(n for n, _ in order)
        log(f"{label} done in {time.monotonic() - started:.1f} s ({names})")


# ---- report --------------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return percentile(values, 0.5)


def report(bench: Bench) -> bool:
    s = bench.samples
    print()
    print(f"image {bench.args.image}, {bench.args.rounds} rounds (+{bench.args.warmup} warm-up)")
    print(f"{'measure':<38}{'n':>4}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for measure in (COLD, POOLED, WARM, PING, SDK, CLI):
        values = s.get(measure)
        if not values:
            continue
        print(
            f"{measure:<38}{len(values):>4}{p50(values):>10.1f}"
            f"{percentile(values, 0.95):>10.1f}{statistics.fmean(values):>10.1f}"
        )
    print()
    print("ratios of p50s:")
    ratios = [(POOLED, SDK), (WARM, SDK), (POOLED, CLI), (WARM, CLI), (COLD, POOLED)]
    for a, b in ratios:
        if s.get(a) and s.get(b):
            print(f"  {a} / {b}: {p50(s[a]) / p50(s[b]):.2f}")
    print()
    rows = []
    for measure, target in ((WARM, TARGET_WARM_MS), (POOLED, TARGET_POOLED_MS)):
        values = s[measure]
        measured = f"p50 {p50(values):.1f} ms (p95 {percentile(values, 0.95):.1f})"
        rows.append((measure, measured, f"<= {target:g} ms", p50(values) <= target))
    print(f"{'target':<38}{'measured':<30}{'goal':<12}result")
    for label, measured, goal, passed in rows:
        print(f"{label:<38}{measured:<30}{goal:<12}{'PASS' if passed else 'FAIL'}")
    return all(ok for *_, ok in rows)


# ---- cleanup -------------------------------------------------------------------------------


def sweep(client: docker.DockerClient, run_id: str) -> int:
    """Remove every container whose name holds the run id (what an interruption left)."""
    removed = 0
    for c in client.api.containers(all=True, filters={"name": f"bench{run_id}-"}):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(c["Id"], force=True)
            removed += 1
    return removed


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="measured rounds (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up rounds (default 1)")
    p.add_argument("--image", default=SandboxSettings().image, help="the sandbox image")
    p.add_argument(
        "--idle",
        type=float,
        default=600.0,
        help="idle_seconds of the sessions: they end themselves after this (default 600)",
    )
    p.add_argument("--no-cli", action="store_true", help="skip the docker CLI measure")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        p.error("--rounds must be positive and --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_id = secrets.token_hex(4)
    client = docker.from_env()
    try:
        client.images.get(args.image)
    except docker.errors.ImageNotFound:
        log(f"the image {args.image} is missing: run `assistd sandbox build`")
        return 2

    def settings(pool_size: int) -> SandboxSettings:
        return SandboxSettings(image=args.image, pool_size=pool_size, idle_seconds=args.idle)

    async def run() -> Bench:
        bench = Bench(
            args=args,
            run_id=run_id,
            cold=SandboxManager(settings(0), BenchContainers(settings(0), run_id)),
            pooled=SandboxManager(settings(1), BenchContainers(settings(1), run_id)),
            client=client,
            cli=None if args.no_cli else shutil.which("docker"),
        )
        try:
            await measure(args, bench)
        finally:
            await asyncio.gather(bench.cold.close(), bench.pooled.close())
        return bench

    log(f"run id {run_id}: containers named *bench{run_id}-*")
    try:
        with sigterm_as_interrupt():
            bench = asyncio.run(run())
        ok = report(bench)
        return 1 if args.strict and not ok else 0
    except KeyboardInterrupt:
        log("interrupted, cleaning up")
        return 130
    finally:
        # A second Ctrl-C must not leave containers behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            left = sweep(client, run_id)
            if left:
                log(f"removed {left} container(s) left behind")
        finally:
            signal.signal(signal.SIGINT, previous)
            client.close()


if __name__ == "__main__":
    sys.exit(main())
