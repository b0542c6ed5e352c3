"""Dynamic batching across concurrent clients (asyncio).

Requests from all connections go into one queue. A single worker takes the oldest
request and waits until either ``max_batch_size`` requests are queued or the oldest
has waited ``max_wait_ms``, then runs :meth:`Policy.infer_batch` on them in one
model call (in a worker thread, so the event loop keeps serving sockets while the
model runs). While a batch runs, new requests queue up and form the next batch at
once if their wait is already over. When the caller tells the batcher how many
clients can still send (:attr:`DynamicBatcher.clients`, each with at most one
request in flight, as :class:`~rt2_ros.serving.ws_server.PolicyServer` guarantees),
the wait also ends as soon as every client's request is in: a lone robot never
waits for company. This is the scheme of Triton's dynamic batcher
(``max_queue_delay_microseconds``) and Ray Serve's ``@serve.batch``
(``max_batch_size``, ``batch_wait_timeout_s``). ``max_batch_size=1`` turns batching off.

Failure isolation: when a batched call raises, every request of the batch is run
again alone, so one bad input fails only its own request.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
import time
from typing import Sequence

from rt2_ros.policies.base import Observation, Policy, PolicyError, PolicyResult

__all__ = ["DynamicBatcher", "Overloaded", "BatchStats"]

log = logging.getLogger("rt2_ros.serving.batching")


class Overloaded(RuntimeError):
    """The queue already holds ``max_queue`` requests; the request was not queued."""


@dataclasses.dataclass
class BatchStats:
    """Counters since start: model calls, requests served, failed model calls."""

    batches: int = 0
    requests: int = 0
    failures: int = 0
    consecutive_failures: int = 0

    @property
    def mean_batch_size(self) -> float:
        """Requests per model call so far (0 before the first)."""
        return self.requests / self.batches if self.batches else 0.0


@dataclasses.dataclass
class _Item:
    obs: Observation
    future: asyncio.Future
    t_enqueue: float


class DynamicBatcher:
    """Queue + one worker that calls ``policy.infer_batch`` on batches of requests.

    Args:
        policy: the backend; only this batcher's single worker thread calls it.
        max_batch_size: most requests per model call (>= 1; 1 = no batching).
        max_wait_ms: longest time the oldest queued request waits for others, ms (>= 0).
        max_queue: most queued (not yet running) requests; more raise :class:`Overloaded`.

    Raises:
        ValueError: a bad setting.
    """

    def __init__(self, policy: Policy, max_batch_size: int = 8, max_wait_ms: float = 5.0, max_queue: int = 256):
        if int(max_batch_size) < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if not max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if int(max_queue) < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.policy = policy
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1e3
        self.max_queue = int(max_queue)
        self.stats = BatchStats()
        #: Number of clients that may send requests, each with at most one in flight;
        #: None = unknown (always wait up to ``max_wait_ms``).
        self.clients: int | None = None
        self._in_model = 0
        self._pending: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def pending(self) -> int:
        """Requests queued and not yet given to the model."""
        return len(self._pending)

    @property
    def running(self) -> bool:
        """True while the batching task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the worker on the running event loop."""
        if self._task is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rt2-model")
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._worker(), name="rt2-batcher")

    async def stop(self) -> None:
        """Stop the worker; queued requests fail with :class:`PolicyError`."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(PolicyError("server shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, obs: Observation) -> tuple[PolicyResult, int]:
        """Queue one observation and wait for its result.

        Returns:
            ``(result, batch_size)``: the policy's answer and how many requests
            shared its model call.

        Raises:
            Overloaded: the queue is full.
            PolicyError: the model failed on this request (or the server stops).
            ValueError: the policy rejected this observation.
        """
        if self._task is None or self._wakeup is None:
            raise PolicyError("batcher not started")
        if len(self._pending) >= self.max_queue:
            raise Overloaded(f"server queue full ({self.max_queue} requests waiting)")
        fut = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(obs, fut, time.monotonic()))
        self._wakeup.set()
        return await fut

    # -- worker --------------------------------------------------------------------------
    async def _worker(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            # Wait for more requests until the batch is full or the oldest has waited long enough.
            deadline = self._pending[0].t_enqueue + self.max_wait_s
            while len(self._pending) < self.max_batch_size and self._may_grow():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            n = min(self.max_batch_size, len(self._pending))
            batch = [self._pending.popleft() for _ in range(n)]
            batch = [it for it in batch if not it.future.done()]  # cancelled: client went away
            if not batch:
                continue
            self._in_model = len(batch)
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run, [it.obs for it in batch])
            finally:
                self._in_model = 0
            for it, out in zip(batch, outcomes):
                if it.future.done():
                    continue
                if isinstance(out, BaseException):
                    it.future.set_exception(out)
                else:
                    it.future.set_result((out, len(batch)))

    def _may_grow(self) -> bool:
        """Could another request still join the batch being formed?"""
        return self.clients is None or len(self._pending) + self._in_model < self.clients

    def _run(self, observations: Sequence[Observation]) -> list[PolicyResult | BaseException]:
        """Model call on the worker thread: one batched call, or one call per request
        if the batched call raised (so one bad request does not fail the others)."""
        self.stats.batches += 1
        self.stats.requests += len(observations)
        try:
            results = self.policy.infer_batch(list(observations))
            if len(results) != len(observations):
                raise PolicyError(f"policy returned {len(results)} results for {len(observations)} observations")
            self.stats.consecutive_failures = 0
            return list(results)
        except Exception as e:  # noqa: BLE001 - reported per request below
            if len(observations) == 1:
                self._failed(e)
                return [e if isinstance(e, (PolicyError, ValueError)) else PolicyError(f"{type(e).__name__}: {e}")]
            log.warning(
                "batched call of %d failed (%s: %s); running them one by one", len(observations), type(e).__name__, e
            )
        out: list[PolicyResult | BaseException] = []
        ok = False
        for obs in observations:
            try:
                out.append(self.policy.infer_batch([obs])[0])
                ok = True
            except Exception as e:  # noqa: BLE001
                self._failed(e)
                out.append(e if isinstance(e, (PolicyError, ValueError)) else PolicyError(f"{type(e).__name__}: {e}"))
        if ok:
            self.stats.consecutive_failures = 0
        return out

    def _failed(self, e: BaseException) -> None:
        self.stats.failures += 1
        self.stats.consecutive_failures += 1
        if not isinstance(e, (PolicyError, ValueError)):
            log.error("policy raised %s: %s", type(e).__name__, e, exc_info=e)
