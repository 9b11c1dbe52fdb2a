"""Where a batch's videos are scored: this process, local worker processes, or a Ray cluster.

A backend takes ``[(index, job), ...]``, the options and the scoring function, and calls
``finished(index, result)`` exactly once per index, in whatever order results arrive: the scorer's
result, or :class:`WorkerDied` for a video whose worker kept dying. It never
changes a number: each worker runs the same :func:`syncnet_fcn.batch.score_video` and loads its model
once (the per-process pipeline cache). A worker that dies has its videos retried on another worker, up
to :data:`MAX_ATTEMPTS` times; after that it is reported as :class:`WorkerDied` (the batch makes it a
``failed`` row) — none lost, none counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import InvalidArgumentError, SyncNetError

MAX_ATTEMPTS = 3
BACKENDS = ("local", "ray")



@dataclass(frozen=True)
class WorkerDied:
    """What a backend reports for a video whose worker died ``attempts`` times while scoring it."""

    attempts: int


Finished = Callable[[int, object], None]


def create_backend(name: str, workers: int = 1, address: str | None = None):
    if workers < 1:
        raise InvalidArgumentError(f"workers must be at least 1, got {workers}")
    if name == "local":
        if address:
            raise InvalidArgumentError("--address is for the ray backend")
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(workers, address)
    raise InvalidArgumentError(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")


class LocalBackend:
    """``workers == 1``: in this process. More: that many worker processes (spawned, so no model or
    thread state is inherited), each handed one video at a time."""

    def __init__(self, workers: int = 1):
        self.workers = workers

    def run(self, items: Sequence[tuple], options, scorer, finished: Finished) -> None:
        if self.workers == 1:
            for index, job in items:
                finished(index, scorer(job, options))
            return
        self._run_pool(list(items), options, scorer, finished)

    def _run_pool(self, items, options, scorer, finished: Finished) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        waiting = list(reversed(items))  # popped from the end: input order
        # Videos in flight when a worker died: which one killed it is unknown, so each is run again
        # alone; only a death while alone counts against a video.
        suspects: list = []
        deaths: dict[int, int] = {}
        context = multiprocessing.get_context("spawn")
        while waiting or suspects:
            pool = ProcessPoolExecutor(self.workers, mp_context=context)
            running: dict = {}
            broken = False
            try:
                while (waiting or suspects or running) and not broken:
                    if suspects:
                        if not running:
                            index, job = suspects.pop()
                            running[pool.submit(scorer, job, options)] = (index, job)
                    else:
                        # one video in flight per worker: when a worker dies, only those were at risk
                        while waiting and len(running) < self.workers:
                            index, job = waiting.pop()
                            running[pool.submit(scorer, job, options)] = (index, job)
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    alone = len(running) == 1
                    for future in done:
                        index, job = running.pop(future)
                        try:
                            result = future.result()
                        except BrokenProcessPool:
                            broken = True
                            if alone:
                                deaths[index] = deaths.get(index, 0) + 1
                                if deaths[index] >= MAX_ATTEMPTS:
                                    finished(index, WorkerDied(deaths[index]))
                                    continue
                            suspects.append((index, job))
                            continue
                        finished(index, result)
                    if broken:  # the others in flight went down with the pool
                        for index, job in running.values():
                            suspects.append((index, job))
                        running.clear()
            finally:
                pool.shutdown(wait=not broken, cancel_futures=True)


class RayBackend:
    """Videos as Ray tasks (one CPU each). Connects to ``address`` or to the Ray already started in this
    process, else starts a local one with ``workers`` CPUs (and stops it afterwards). Ray re-runs a task
    whose worker died (``max_retries``); each worker process keeps its loaded pipeline between tasks."""

    def __init__(self, workers: int = 1, address: str | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InvalidArgumentError("the ray backend needs Ray: pip install 'syncnet-fcn[ray]'") from None
        self.workers = workers
        self.address = address

    def run(self, items: Sequence[tuple], options, scorer, finished: Finished) -> None:
        import ray

        started_here = False
        if not ray.is_initialized():
            kwargs = {"address": self.address} if self.address else {"num_cpus": self.workers}
            try:
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InvalidArgumentError(f"cannot start or reach Ray ({self.address or 'local'}): {exc}") from None
            started_here = True
        try:
            self._run(ray, list(items), options, scorer, finished)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray, items, options, scorer, finished: Finished) -> None:
        task = ray.remote(num_cpus=1, max_retries=MAX_ATTEMPTS - 1, retry_exceptions=False)(_score_in_ray)
        slots = max(1, int(ray.cluster_resources().get("CPU", self.workers)))
        waiting = list(reversed(items))
        running: dict = {}
        while waiting or running:
            while waiting and len(running) < slots:
                index, job = waiting.pop()
                running[task.remote(scorer, job, options)] = (index, job)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                index, job = running.pop(ref)
                try:
                    result = ray.get(ref)
                except SyncNetError:
                    raise  # the batch's problem (weights, engine), raised as the original error
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.ActorDiedError,
                        ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError,
                        ray.exceptions.ObjectLostError):
                    result = WorkerDied(MAX_ATTEMPTS)
                finished(index, result)


def _score_in_ray(scorer, job, options):
    return scorer(job, options)
