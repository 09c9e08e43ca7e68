"""Running the simulator: in a daemon thread for tests and benchmarks, or in the foreground for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
from collections.abc import Callable
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypeVar

from ..eventloop import new_event_loop
from .config import SimulatorConfig
from .http import HttpServer
from .server import MAX_BODY_BYTES, Simulator

T = TypeVar("T")

# How long in-flight responses get to finish when the server stops before they are cancelled; kept short
# because a simulator's open streams are disposable and a stop must not hold up a test run.
SHUTDOWN_GRACE_S = 0.25

# Benchmarks open thousands of connections at once; the default backlog of 128 would refuse some of them.
_BACKLOG = 4096


async def _start(simulator: Simulator, tls: SSLContext | None = None) -> tuple[HttpServer, str]:
    config = simulator.config
    if tls is not None:
        simulator.scheme = "https"
    server = HttpServer(simulator.handle, max_body=MAX_BODY_BYTES)
    port = await server.start(config.host, config.port, backlog=_BACKLOG, ssl=tls)
    host = f"[{config.host}]" if ":" in config.host else config.host
    return server, f"{'https' if tls else 'http'}://{host}:{port}"


async def _stop(server: HttpServer, simulator: Simulator) -> None:
    await server.stop(SHUTDOWN_GRACE_S)
    simulator.close()


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread, so synchronous test code can drive it.

    With `ssl` (a server-side context) it speaks HTTPS, and `base_url` says so: tests use it to check the
    client's certificate handling.
    """

    def __init__(self, config: SimulatorConfig | None = None, *, ssl: SSLContext | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._tls = ssl
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: HttpServer | None = None
        self._simulator: Simulator | None = None

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._run_loop, args=(loop,), name="batchstream-simulator", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        simulator = Simulator(self.config)
        try:
            starting = _start(simulator, self._tls)
            self._server, self.base_url = asyncio.run_coroutine_threadsafe(starting, loop).result()
        except BaseException:
            self._halt_loop()
            raise
        self._simulator = simulator

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._server is not None:
            assert self._simulator is not None
            stopping = _stop(self._server, self._simulator)
            asyncio.run_coroutine_threadsafe(stopping, self._loop).result()
            self._server = None
        self._halt_loop()

    def stats(self) -> dict[str, Any]:
        return self._on_loop(lambda simulator: simulator.stats.snapshot())

    def reset(self) -> None:
        self._on_loop(lambda simulator: simulator.reset())

    def batches(self) -> list[dict[str, Any]]:
        """Every Message Batch created, in order: ids, custom_ids, request keys, status, counts."""
        return self._on_loop(lambda simulator: simulator.batches.record())

    def _on_loop(self, fn: Callable[[Simulator], T]) -> T:
        """Run `fn` on the server's loop, as the state it touches belongs to that thread; once stopped, the
        last state stays readable here so a test can check it after shutting the server down."""
        simulator, loop = self._simulator, self._loop
        if simulator is None:
            raise RuntimeError("simulator not started")
        if loop is None:
            return fn(simulator)

        async def call() -> T:
            return fn(simulator)

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _halt_loop(self) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop = self._thread = None


def serve(config: SimulatorConfig) -> None:
    """Run in the foreground until SIGINT or SIGTERM; announces its URL on stdout for a parent process."""
    _tune_gc()
    # uvloop where installed, as for a run: a benchmark's thousand concurrent requests each cost the loop a
    # timer, a task and several callbacks, which uvloop runs in C.
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(config))


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path of a process that only serves.

    A wave of a thousand requests keeps their objects alive for the whole time to first token, long enough
    for CPython's default thresholds to promote them into older generations, and each collection of the
    oldest rescans everything start-up imported too (the CLI brings in the SDK: some 170,000 objects, about
    0.1 s a pass). That was a quarter of the simulator's CPU. Start-up's objects are frozen out of every
    future pass, and the youngest generation is collected after 10,000 allocations rather than 700, by when
    most of a request's objects have gone by reference counting. Not done for `SimulatorThread`: there the
    collector belongs to the host process.
    """
    gc.freeze()
    gc.set_threshold(10_000)


async def _serve(config: SimulatorConfig) -> None:
    simulator = Simulator(config)
    server, url = await _start(simulator)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on Windows; Ctrl-C then still arrives as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    print(f"batchstream simulator listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await _stop(server, simulator)
