"""Runs dialogues concurrently on a private event loop; starts and probes each target once.

pytest runs items one after another; the plugin submits upcoming items here so that their dialogues
overlap, bounded by a semaphore, and each item then only waits for its own result.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import resource
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from .connection import ConnectError, Connection, Event, ResetOnConnect, TLSConnectError, make_tls_context
from .dialogue import BIG_AT_ONCE, Dialogue, Settings, describe
from .escapes import escape_bytes
from .mailbox import Mailbox
from .model import Cause, Outcome, Scenario
from .reply import Reply
from .results import result_entry
from .targets.base import Endpoint, Target, TargetError
from .transcript import Transcript

# Open connections per target, parked ones included: a stalled server costs one timeout per step kind
# instead of one per queued scenario, yet a real server's own limit (Exim: 20) is met with backoff, not FAILs.
MAX_OPEN_PER_TARGET = 128
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024
ARENA_MAX = 2


def bound_malloc() -> None:
    """Memory freed by the run goes back to the system instead of staying in glibc's per-thread heaps.

    - Buffers of 128 KiB and more come from the system and go back to it when freed: glibc raises its mmap
      threshold after a big buffer is freed, so the next 10 MB message was carved from a thread's heap arena
      and stayed there when freed (a 30-target run grew by 60-80 MiB that no live object held).
    - At most two heap arenas: glibc makes one per thread that meets contention (up to 8 per core), and
      each keeps what its thread freed; the targets' start-up and mailbox threads made a 30-target run
      peak 20-25 MiB higher. Python's threads take turns under the GIL, so they hardly contend for malloc.
    Elsewhere (not glibc) nothing is changed."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_ARENA_MAX, ARENA_MAX)


def give_back_freed() -> None:
    """Hand the memory the dialogues freed back to the system before the reports are built (glibc keeps
    free pages inside its heaps until asked)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc() -> Any:
    """The C library when it is glibc (mallopt and malloc_trim are glibc's), else None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (a third less CPU per dialogue on the runner's thread), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def max_open_connections() -> int:
    """Connections open at once in this process, well inside the file descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(4096, (soft if soft != resource.RLIM_INFINITY else 8192) // 2 - 64))


class SlotPool:
    """The runner's concurrency slots. A dialogue coming back from a wait goes before dialogues not yet
    started: otherwise it would queue behind the whole catalog and time out on our account."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._returning: collections.deque[asyncio.Future[None]] = collections.deque()
        self._new: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self, returning: bool = False) -> None:
        if self.free > 0 and not self._returning and (returning or not self._new):
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._returning if returning else self._new
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot, then cancelled: give it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in (self._returning, self._new):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self.free += 1


class Slot:
    """One of the runner's concurrency slots, held by a dialogue and lent out while it only waits."""

    def __init__(self, pool: SlotPool) -> None:
        self.semaphore = pool
        self.held = False

    async def __aenter__(self) -> Slot:
        await self.semaphore.acquire()
        self.held = True
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.held:
            self.held = False
            self.semaphore.release()

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        if self.held:
            self.held = False
            self.semaphore.release()
        try:
            yield
        finally:
            await self.semaphore.acquire(returning=True)  # cancelled here: not held, nothing released twice
            self.held = True


@dataclass
class TargetState:
    """What starting and probing a target found out; shared by all its scenarios."""

    target: Target
    endpoint: Endpoint | None = None
    error: str | None = None  # could not start or connect: every scenario is an ERROR
    broken: str | None = None  # no usable greeting: every scenario FAILs without a dialogue
    cause: Cause | None = None  # why error or broken is set
    banner: str = ""
    keywords: list[str] = field(default_factory=list)
    tls_keywords: list[str] = field(default_factory=list)
    tls: str = "none"
    started: float = 0.0  # loop time when the target became ready (for its time limit)
    mailbox: Mailbox | None = None  # one per target: its reader keeps an index that all dialogues share

    def keyword_names(self) -> set[str]:
        return {k.split()[0].upper() for k in self.keywords + self.tls_keywords if k.strip()}

    def identity(self) -> dict[str, Any]:
        t = self.target
        return {
            "label": t.label,
            "kind": t.kind,
            "spec": t.spec,
            "address": f"{self.endpoint.host}:{self.endpoint.port}" if self.endpoint else "",
            "banner": self.banner,
            "ehlo_keywords": self.keywords,
            "tls_ehlo_keywords": self.tls_keywords,
            "tls": self.tls,
            "params": t.params.public(),
            "profile": t.params.profile,
            "details": t.details() | ({"config": t.config} if t.config else {}),
            "error": self.error or self.broken,
            "logs": t.logs(),
        }


def profile_skip(scenario: Scenario, profile: str | None) -> str | None:
    """Why a scenario does not apply to a target of this profile (C3), or None when it does."""
    if not scenario.profiles or profile in scenario.profiles:
        return None
    wanted = ", ".join(scenario.profiles)
    if profile is None:
        return f"applies to profile {wanted}; declare --profile"
    return f"applies to profile {wanted}, not to this {profile} target"


class Runner:
    def __init__(self, targets: list[Target], settings: Settings, concurrency: int = 8,
                 sink: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.targets = {t.label: t for t in targets}
        # each finished result goes here at once (the plugin's spool, on disk) and its future keeps what the
        # sink returns: pytest takes results in collection order, so thousands can finish before it asks
        self.sink = sink
        self.settings = settings
        self.concurrency = max(1, concurrency)
        bound_malloc()
        self.loop = new_event_loop()
        # targets start in threads (processes, containers): one thread each, so that many start at once
        self.loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=max(8, len(targets) + 4)))
        self._thread = threading.Thread(target=self.loop.run_forever, name="smtp-conformance-runner", daemon=True)
        self._thread.start()
        self._futures: dict[tuple[str, str], concurrent.futures.Future[dict[str, Any]]] = {}
        self._states: dict[str, asyncio.Task[TargetState]] = {}
        self._started: list[Target] = []
        self._lock = threading.Lock()
        self._slots: SlotPool | None = None
        self._target_slots: dict[str, asyncio.Semaphore] = {}
        self._open: asyncio.Semaphore | None = None  # connections open in this process, parked ones too
        self._big: asyncio.Semaphore | None = None  # writes of megabytes at once (dialogue.BIG_AT_ONCE)
        self._target_open: dict[str, asyncio.Semaphore] = {}
        self._target_cap: dict[str, int] = {}  # what _target_open allows now (lowered when a server is full)
        self._target_busy: dict[str, int] = {}  # dialogues with a connection open, per target
        self._closed = False
        # progress: results done and outcomes per target, dialogues in flight (guarded by _lock)
        self._done: dict[str, int] = {}
        self._outcomes: dict[str, dict[str, int]] = {}
        self._running: dict[tuple[str, str], float] = {}
        self._dialogues: dict[tuple[str, str], Dialogue] = {}
        self._notable: list[tuple[str, str, str, str]] = []  # FAIL/NON-STRICT/ERROR in completion order
        # submitted dialogues wait here as three references; at most `window` run (or wait) as tasks at once,
        # so that submitting a catalog for 30 targets does not make 10 000 coroutines up front
        self._pending: collections.deque[tuple[Scenario, str, concurrent.futures.Future[dict[str, Any]]]] = \
            collections.deque()
        self._window = max(256, self.concurrency * 16)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump_due = False

    # ----- public API, called from pytest's thread ---------------------------------------------
    def submit(self, scenario: Scenario, label: str) -> concurrent.futures.Future[dict[str, Any]]:
        key = (scenario.id, label)
        with self._lock:
            future = self._futures.get(key)
            if future is None:
                future = concurrent.futures.Future()
                self._futures[key] = future
                self._pending.append((scenario, label, future))
                if not self._pump_due:
                    self._pump_due = True
                    self.loop.call_soon_threadsafe(self._pump)
            return future

    def result(self, scenario: Scenario, label: str) -> dict[str, Any]:
        """The result, handed over once: the runner keeps no finished result (memory stays flat)."""
        future = self.submit(scenario, label)
        try:
            return future.result()
        finally:
            with self._lock:
                self._futures.pop((scenario.id, label), None)

    def identities(self) -> list[dict[str, Any]]:
        """Identity of every target this runner started or tried to (call after close() for final logs)."""
        out = []
        for label in self.targets:
            task = self._states.get(label)
            if task is not None and task.done() and not task.cancelled():
                out.append(task.result().identity())
        return out

    def probe(self, labels: list[str], timeout: float | None = None) -> dict[str, str]:
        """Start and probe these targets (connect, greeting) before any scenario runs; returns the unusable
        ones: label -> the one-line reason (not started, refused, does not resolve, timed out...)."""
        async def all_states() -> list[TargetState]:
            return list(await asyncio.gather(*(self._state(label) for label in labels)))

        states = asyncio.run_coroutine_threadsafe(all_states(), self.loop).result(timeout)
        return {s.target.label: s.error for s in states if s.error}

    def progress(self) -> dict[str, Any]:
        """For a progress line: results done per target, outcomes so far, and the dialogues in flight
        (scenario id, target, seconds running, what it waits for)."""
        with self._lock:
            return {"done": dict(self._done), "outcomes": {k: dict(v) for k, v in self._outcomes.items()},
                    "notable": list(self._notable),
                    "running": [(sid, label, self.loop.time() - since, self._dialogues[(sid, label)].progress_note)
                                for (sid, label), since in self._running.items()]}

    def completed(self) -> list[dict[str, Any]]:
        """The results finished so far, in no particular order (an interrupted run reports them)."""
        with self._lock:
            futures = list(self._futures.values())
        return [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]

    def widen_start_pool(self, workers: int) -> None:
        """Let up to `workers` targets start at once (each start runs in a thread of the loop's executor)."""
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smtpc-start")
        self.loop.call_soon_threadsafe(self.loop.set_default_executor, pool)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._pending.clear()
            for future in list(self._futures.values()):
                future.cancel()

        def cancel_tasks() -> None:
            for task in list(self._tasks):
                task.cancel()

        self.loop.call_soon_threadsafe(cancel_tasks)

        def stop(target: Target) -> None:
            with contextlib.suppress(Exception):
                target.stop()

        if self._started:
            # all at once: each stop may wait seconds for a process that ignores SIGTERM
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, len(self._started))) as pool:
                list(pool.map(stop, self._started))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        give_back_freed()

    # ----- inside the loop ---------------------------------------------------------------------
    def _pump(self) -> None:
        """Start pending dialogues while fewer than `window` are under way."""
        with self._lock:
            self._pump_due = False
            while self._pending and len(self._tasks) < self._window:
                scenario, label, future = self._pending.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                task = self.loop.create_task(self._drive(scenario, label, future))
                self._tasks.add(task)

    async def _drive(self, scenario: Scenario, label: str, future: concurrent.futures.Future[dict[str, Any]]) -> None:
        try:
            result = await self._run(scenario, label)
            future.set_result(result if self.sink is None else self.sink(result))
        except asyncio.CancelledError:
            if not future.done():
                future.set_exception(concurrent.futures.CancelledError())  # as a cancelled future would
            raise
        except BaseException as exc:  # the waiting pytest thread gets it, as run_coroutine_threadsafe did
            future.set_exception(exc)
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._pump()

    async def _run(self, scenario: Scenario, label: str) -> dict[str, Any]:
        entry = await self._play(scenario, label)
        with self._lock:
            self._done[label] = self._done.get(label, 0) + 1
            counts = self._outcomes.setdefault(label, {})
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
            self._running.pop((scenario.id, label), None)
            self._dialogues.pop((scenario.id, label), None)
            if entry["outcome"] in ("fail", "non-strict", "error"):
                self._notable.append((scenario.id, label, entry["outcome"], entry["message"]))
        return entry

    async def _play(self, scenario: Scenario, label: str) -> dict[str, Any]:
        state = await self._state(label)
        if state.error:
            return result_entry(scenario, label, Outcome.ERROR, state.error, cause=state.cause)
        if state.broken:
            return result_entry(scenario, label, Outcome.FAIL, state.broken, cause=state.cause)
        missing = [k for k in scenario.requires if k not in state.keyword_names()]
        if missing:
            return result_entry(scenario, label, Outcome.UNSUPPORTED,
                                f"needs EHLO keyword{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                                "which the target does not advertise", cause=Cause.UNSUPPORTED_EXTENSION)
        skipped = profile_skip(scenario, state.target.params.profile)
        if skipped:
            entry = result_entry(scenario, label, Outcome.SKIPPED, skipped)
            entry["profile_skip"] = "undeclared" if state.target.params.profile is None else "other"
            return entry
        lacking = [n for n in scenario.needs if n not in state.target.capabilities()]
        if lacking:
            return result_entry(scenario, label, Outcome.UNSUPPORTED,
                                f"needs target parameter{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}",
                                cause=Cause.MISSING_PARAMETER, missing=lacking)
        assert state.endpoint is not None
        limit = state.target.params.time_limit
        if self._slots is None:
            self._slots = SlotPool(self.concurrency)
            self._open = asyncio.Semaphore(max_open_connections())
            self._big = asyncio.Semaphore(BIG_AT_ONCE)
        per_target = self._target_slots.get(label)
        if per_target is None and state.target.params.concurrency:
            per_target = self._target_slots[label] = asyncio.Semaphore(state.target.params.concurrency)
        target_open = self._target_open.setdefault(label, asyncio.Semaphore(MAX_OPEN_PER_TARGET))
        assert self._open is not None and self._big is not None
        # the target's own limit first: a target with concurrency 1 must not sit on global slots it cannot use;
        # its declared concurrency is never lent out (it is the server's limit), the global slot is
        async with per_target or contextlib.nullcontext(), target_open, self._open, \
                Slot(self._slots) as slot, self._counted(label):
            params = state.target.params
            settings = replace(self.settings, tls_context=lambda: make_tls_context(verify=params.verify_tls),
                               idle=slot.lent, busy=lambda: self._server_full(label),
                               big=functools.partial(self._one_big, slot))
            if limit is not None:
                left = state.started + limit - self.loop.time()
                if left <= 0:
                    return result_entry(scenario, label, Outcome.FAIL,
                                        f"not run: the target's time limit of {limit:g} s was used up",
                                        cause=Cause.TIME_LIMIT)
                settings = replace(settings, deadline=left)
            dialogue = Dialogue(scenario, state.endpoint, params.values(), settings, mailbox=state.mailbox,
                                profile=params.profile)
            with self._lock:
                self._running[(scenario.id, label)] = self.loop.time()
                self._dialogues[(scenario.id, label)] = dialogue
            outcome = await dialogue.run()
        return result_entry(scenario, label, outcome.outcome, outcome.message, outcome, cause=outcome.cause)

    @contextlib.asynccontextmanager
    async def _one_big(self, slot: Slot) -> AsyncIterator[None]:
        """Held around a write of megabytes; the slot is lent out while the write waits for its turn."""
        assert self._big is not None
        if self._big.locked():
            async with slot.lent():
                await self._big.acquire()
        else:
            await self._big.acquire()
        try:
            yield
        finally:
            self._big.release()

    @contextlib.asynccontextmanager
    async def _counted(self, label: str) -> AsyncIterator[None]:
        self._target_busy[label] = self._target_busy.get(label, 0) + 1
        try:
            yield
        finally:
            self._target_busy[label] -= 1

    def _server_full(self, label: str) -> None:
        """The server said "too many connections": allow half as many as are open now, for the rest of the run
        (the permits are taken by tasks that never give them back). Halving converges in a few refusals even
        though the server counts connections we already closed for a while."""
        cap = self._target_cap.get(label, MAX_OPEN_PER_TARGET)
        wanted = max(1, min(cap, self._target_busy.get(label, 1)) // 2)
        self._target_cap[label] = wanted
        for _ in range(cap - wanted):
            self.loop.create_task(self._target_open[label].acquire())

    async def _state(self, label: str) -> TargetState:
        task = self._states.get(label)
        if task is None:
            task = self._states[label] = self.loop.create_task(self._start(self.targets[label]))
        return await asyncio.shield(task)

    async def _start(self, target: Target) -> TargetState:
        state = TargetState(target)
        self._started.append(target)
        try:
            state.endpoint = await asyncio.to_thread(target.start)
        except TargetError as exc:
            state.error, state.cause = str(exc), Cause.NOT_STARTED
            return state
        except Exception as exc:  # a target kind's bug must not hang the run
            state.error = f"{target.label}: could not start: {exc.__class__.__name__}: {exc}"
            state.cause = Cause.HARNESS
            return state
        await self._probe(state)
        state.mailbox = target.mailbox()
        state.started = self.loop.time()
        return state

    async def _probe(self, state: TargetState) -> None:
        """Greeting and EHLO once per target: identity, keywords, and a fast verdict on dead servers."""
        assert state.endpoint is not None
        ep = state.endpoint
        timeout = self.settings.timeout
        conn = Connection(Transcript())
        tls = make_tls_context(verify=state.target.params.verify_tls) if ep.implicit_tls else None
        try:
            await conn.open(ep.host, ep.port, timeout, tls, ep.server_hostname)
        except TLSConnectError as exc:
            state.broken = f"implicit TLS failed (RFC 8314 §3.3): {exc}; scenarios were not run"
            state.cause = Cause.TLS
            return
        except ResetOnConnect as exc:
            state.broken = (f"the server sent no usable greeting (RFC 5321 §3.1 and §4.2 require 220, or 554): "
                            f"{exc}; scenarios were not run")
            state.cause = Cause.NO_GREETING
            return
        except ConnectError as exc:
            state.error, state.cause = f"{state.target.label}: {exc}", Cause.REFUSED
            return
        try:
            greeting = await conn.next(timeout)
            if isinstance(greeting, Reply):
                state.banner = escape_bytes(greeting.raw[:512]).rstrip()
            if not isinstance(greeting, Reply) or greeting.code not in (220, 554) or greeting.truncated:
                state.broken = (f"the server sent no usable greeting (RFC 5321 §3.1 and §4.2 require 220, or 554): "
                                f"{describe(greeting)}; scenarios were not run")
                state.cause = Cause.NO_GREETING
                return
            if greeting.code == 554:
                return
            client = state.target.params.values()["client"]
            await conn.send(f"EHLO {client}\r\n".encode(), timeout)
            ehlo = await conn.next(timeout)
            if isinstance(ehlo, Reply) and ehlo.code == 250:
                state.keywords = ehlo.keywords()
            if "STARTTLS" in {k.split()[0] for k in state.keywords}:
                state.tls = "starttls"
                state.tls_keywords = await self._probe_tls(conn, client, timeout, state)
            elif ep.implicit_tls:
                state.tls = "implicit"
            if not isinstance(ehlo, Event):
                await conn.send(b"QUIT\r\n", timeout)
                await conn.next(min(timeout, 2.0))
        finally:
            await conn.close()

    async def _probe_tls(self, conn: Connection, client: str, timeout: float, state: TargetState) -> list[str]:
        await conn.send(b"STARTTLS\r\n", timeout)
        reply = await conn.next(timeout)
        if not isinstance(reply, Reply) or reply.code != 220:
            return []
        ctx = make_tls_context(verify=state.target.params.verify_tls)
        if await conn.start_tls(ctx, state.endpoint.server_hostname if state.endpoint else None, timeout):
            return []
        await conn.send(f"EHLO {client}\r\n".encode(), timeout)
        ehlo = await conn.next(timeout)
        return ehlo.keywords() if isinstance(ehlo, Reply) and ehlo.code == 250 else []
