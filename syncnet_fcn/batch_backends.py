"""Where a batch's videos are scored: this process, local worker processes, or a Ray cluster.

A backend takes ``[(index, job), ...]``, the options and the scoring function, and calls
``finished(index, result)`` exactly once per index, in whatever order results arrive: the scorer's
result, or :class:`WorkerDied` for a video whose worker kept dying. It never
changes a number: each worker runs the same :func:`syncnet_fcn.batch.score_video` and loads its model
once (the per-process pipeline cache).

A worker that dies has its videos retried on another worker, up to :data:`MAX_ATTEMPTS` times; after
that it is reported as :class:`WorkerDied` (the batch makes it a ``failed`` row) — none lost, none
counted twice.

Workers share the cores: each gets a CPU budget of ``cores // workers`` threads
(:mod:`syncnet_fcn.cpu_budget`, set before it builds its pipeline), as Ray gives a task ``num_cpus``.
Without it every worker would start threads for all the cores (decoder, face mesh, ONNX Runtime,
torch, OpenCV) and two workers on two cores would mostly take turns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .cpu_budget import available_cores, set_cpu_threads, share_of_cores
from .errors import InvalidArgumentError, SyncNetError

MAX_ATTEMPTS = 3
BACKENDS = ("local", "ray")
#: ``workers`` for "score in this process" (no worker processes; the process's own thread budget)
IN_PROCESS = 0
#: ``workers`` for "as many as pays": :func:`default_workers` (the command line's default)
AUTO = "auto"


def default_workers(videos: int) -> int:
    """The local backend's ``workers`` for :data:`AUTO`: one single-threaded worker per core
    (benchmarks/eval_batch.py measured that fastest: one process with all the threads keeps the
    cores only partly busy), but a single video is scored in this process (a worker's start would
    be all cost)."""
    return IN_PROCESS if videos <= 1 else min(available_cores(), videos)


@dataclass(frozen=True)
class WorkerDied:
    """What a backend reports for a video whose worker died ``attempts`` times while scoring it."""

    attempts: int


Finished = Callable[[int, object], None]


def create_backend(name: str, workers: int | str | None = None, address: str | None = None,
                   threads: int | None = None, videos: int = 2):
    """``workers``: videos scored at once, 0 in this process; :data:`AUTO`: :func:`default_workers` of
    ``videos`` (the videos to score); ``None``: in this process for ``local`` (a library caller, a web
    server, keeps its loaded pipeline), one per core for ``ray``. ``threads``: each worker's CPU
    budget (default: its share of the cores; a cluster's task: 1)."""
    if threads is not None and threads < 1:
        raise InvalidArgumentError(f"threads must be at least 1, got {threads}")
    if name == "local":
        if address:
            raise InvalidArgumentError("--address is for the ray backend")
        workers = IN_PROCESS if workers is None else default_workers(videos) if workers == AUTO else workers
        if not isinstance(workers, int) or workers < 0:
            raise InvalidArgumentError(f"workers must be 0 (in this process) or more, got {workers}")
        return LocalBackend(workers, threads)
    if name == "ray":
        workers = available_cores() if workers in (None, AUTO) else workers
        if not isinstance(workers, int) or workers < 1:
            raise InvalidArgumentError(f"the ray backend needs at least 1 worker, got {workers}")
        return RayBackend(workers, address, threads)
    raise InvalidArgumentError(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")


class LocalBackend:
    """``workers == 0``: in this process, with its own thread budget. More: that many worker processes
    (spawned, so no model or thread state is inherited), each with ``cores // workers`` threads and
    handed one video at a time (``threads``: another budget per worker)."""

    def __init__(self, workers: int = IN_PROCESS, threads: int | None = None):
        self.workers, self.threads = workers, threads

    @property
    def threads_per_worker(self) -> int:
        return self.threads or share_of_cores(self.workers)

    def run(self, items: Sequence[tuple], options, scorer, finished: Finished) -> None:
        if self.workers == IN_PROCESS:
            if self.threads is not None:  # this process's budget: read by the pipeline it builds next
                set_cpu_threads(self.threads)
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
            # the budget is set before the worker imports torch or builds a pipeline
            pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=set_cpu_threads,
                                       initargs=(self.threads_per_worker,))
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
    """Videos as Ray tasks. On a local Ray started here (with this machine's cores), ``workers`` tasks
    at once of ``cores // workers`` CPUs each; on a cluster (``address``, or the Ray already started in
    this process) tasks of one CPU, as many as it has. A task runs with as many threads as CPUs it was
    given. Ray re-runs a task whose worker died (``max_retries``); each worker process keeps its
    loaded pipeline between tasks."""

    def __init__(self, workers: int = 1, address: str | None = None, threads: int | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InvalidArgumentError("the ray backend needs Ray: pip install 'syncnet-fcn[ray]'") from None
        self.workers = workers
        self.address = address
        self.threads = threads

    def run(self, items: Sequence[tuple], options, scorer, finished: Finished) -> None:
        import ray

        started_here = False
        threads = self.threads or 1  # a cluster's task: one CPU (Ray's own default)
        if not ray.is_initialized():
            if not self.address:
                threads = self.threads or share_of_cores(self.workers)
            kwargs = {"address": self.address} if self.address else {"num_cpus": self.workers * threads}
            try:
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InvalidArgumentError(f"cannot start or reach Ray ({self.address or 'local'}): {exc}") from None
            started_here = True
        try:
            self._run(ray, list(items), options, scorer, finished, threads)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray, items, options, scorer, finished: Finished, threads: int) -> None:
        task = ray.remote(num_cpus=threads, max_retries=MAX_ATTEMPTS - 1, retry_exceptions=False)(_score_in_ray)
        slots = max(1, int(ray.cluster_resources().get("CPU", self.workers * threads)) // threads)
        waiting = list(reversed(items))
        running: dict = {}
        while waiting or running:
            while waiting and len(running) < slots:
                index, job = waiting.pop()
                running[task.remote(scorer, job, options, threads)] = (index, job)
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


def _score_in_ray(scorer, job, options, threads: int):
    set_cpu_threads(threads)  # the task's CPUs; cheap, and the same for every task of a run
    return scorer(job, options)
