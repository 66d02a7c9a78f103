"""Bounded, cached map builds: a few at a time, a bounded queue, one build per key.

Building an audience map reads layers, runs analyses and renders megabytes of HTML; fifty at
once took a server from 0.9 GB to 4 GB. A :class:`BuildGate` runs at most ``workers`` builds
at once and lets at most ``queue`` more wait for a slot; a request beyond that gets
:class:`BuildsBusy` (the API answers 503 with ``Retry-After``). Results are cached per key (the
caller puts the map, the layers the caller may see, the options and the store and rules
versions in it), least recently used evicted by count and by total size; concurrent requests
for a key being built wait for that build instead of starting their own. After a build, when
no other build runs, the process's freed heap is returned to the system (glibc
``malloc_trim``), so a burst of builds does not leave the server at its peak size.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass

__all__ = ["BuildGate", "BuildStats", "BuildsBusy", "release_memory"]


class BuildsBusy(RuntimeError):
    """Every build slot and queue place is taken; retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class BuildStats:
    """Counters of a :class:`BuildGate` (for tests and the service's log)."""

    builds: int  # builds run (each a cache miss with no build of its key in flight)
    hits: int  # answers from the cache
    joined: int  # requests that waited for a build of the same key already running
    refused: int  # BuildsBusy raised
    running: int  # builds running now
    peak_running: int  # most builds ever running at once
    admitted: int  # builds running or waiting for a slot now
    cached: int  # entries in the cache
    cached_bytes: int


def release_memory() -> None:
    """Collect cycles and hand freed heap pages back to the system (glibc only; no-op else)."""
    gc.collect()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class BuildGate:
    """At most ``workers`` builds at once, ``queue`` more waiting, results cached per key.

    Parameters
    ----------
    workers
        Builds running at once (each holds a full map in memory while it runs).
    queue
        Builds that may wait for a slot; one more raises :class:`BuildsBusy`.
    cache_entries, cache_bytes
        Bounds of the result cache (least recently used evicted first; sizes counted in
        characters of HTML); a result larger than ``cache_bytes`` is returned but not kept.
    trim
        Call :func:`release_memory` after a build when no other build runs.
    """

    def __init__(self, *, workers: int = 2, queue: int = 8, cache_entries: int = 32,
                 cache_bytes: int = 128 * 2**20, trim: bool = True) -> None:
        if workers < 1 or queue < 0 or cache_entries < 0 or cache_bytes < 0:
            raise ValueError(f"BuildGate(workers={workers}, queue={queue}, cache_entries="
                             f"{cache_entries}, cache_bytes={cache_bytes}): expected "
                             "workers >= 1 and the others >= 0")
        self.workers, self.queue = workers, queue
        self.cache_entries, self.cache_bytes = cache_entries, cache_bytes
        self.trim = trim
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._cache: OrderedDict[Hashable, str] = OrderedDict()
        self._size = 0
        self._inflight: dict[Hashable, Future[str]] = {}
        self._admitted = self._running = self._peak = 0
        self._builds = self._hits = self._joined = self._refused = 0
        self._seconds = 0.0  # mean build time (exponential average), for Retry-After

    def get(self, key: Hashable, build: Callable[[], str]) -> str:
        """The cached result of ``key``, else ``build()`` run within the bounds.

        Raises :class:`BuildsBusy` when ``workers + queue`` builds are already admitted;
        an exception of ``build`` reaches every request waiting for that key and nothing
        is cached.
        """
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self._hits += 1
                return hit
            pending = self._inflight.get(key)
            if pending is None:
                if self._admitted >= self.workers + self.queue:
                    self._refused += 1
                    raise BuildsBusy(
                        f"{self._admitted} map builds are running or queued (limit "
                        f"{self.workers} at once + {self.queue} waiting); retry shortly",
                        retry_after_s=self._retry_after())
                self._admitted += 1
                mine: Future[str] = Future()
                self._inflight[key] = mine
            else:
                self._joined += 1
        if pending is not None:
            return pending.result()
        return self._run(key, build, mine)

    def _run(self, key: Hashable, build: Callable[[], str], mine: Future[str]) -> str:
        try:
            with self._slots:
                t0 = time.perf_counter()
                with self._lock:
                    self._running += 1
                    self._peak = max(self._peak, self._running)
                try:
                    result = build()
                finally:
                    with self._lock:
                        self._running -= 1
                        dt = time.perf_counter() - t0
                        self._seconds = dt if self._builds == 0 else 0.7 * self._seconds + 0.3 * dt
                        self._builds += 1
        except BaseException as exc:
            with self._lock:
                self._inflight.pop(key, None)
                self._admitted -= 1
            mine.set_exception(exc)
            raise
        with self._lock:
            self._store(key, result)
            self._inflight.pop(key, None)
            self._admitted -= 1
            idle = self._admitted == 0
        mine.set_result(result)
        del build
        if self.trim and idle:
            release_memory()
        return result

    def _store(self, key: Hashable, value: str) -> None:
        size = len(value)
        if self.cache_entries == 0 or size > self.cache_bytes:
            return
        self._cache[key] = value
        self._size += size
        while len(self._cache) > self.cache_entries or self._size > self.cache_bytes:
            _k, old = self._cache.popitem(last=False)
            self._size -= len(old)

    def _retry_after(self) -> int:
        # the queue ahead drains at `workers` builds per mean build time
        waves = math.ceil(self._admitted / self.workers)
        return int(min(max(math.ceil(waves * max(self._seconds, 0.5)), 1), 60))

    def clear(self) -> None:
        """Drop every cached result (builds in flight finish and are cached)."""
        with self._lock:
            self._cache.clear()
            self._size = 0

    def stats(self) -> BuildStats:
        """The gate's counters now."""
        with self._lock:
            return BuildStats(builds=self._builds, hits=self._hits, joined=self._joined,
                              refused=self._refused, running=self._running,
                              peak_running=self._peak, admitted=self._admitted,
                              cached=len(self._cache), cached_bytes=self._size)
