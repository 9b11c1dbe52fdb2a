"""How many CPU threads this process's work may use: one number that every threaded part reads.

By default a process may use every core it can run on. A batch worker gets a share instead
(``cores // workers``, as Ray gives a task ``num_cpus`` and sets ``OMP_NUM_THREADS``): two workers on
two cores then run single-threaded side by side rather than four-plus threads each fighting over two
cores, which is what made a second worker add little.

Who reads it:

* the video decoder's frame threads (:func:`syncnet_fcn.limits.decoder_threads`);
* the landmark engine's face-mesh threads (its two mesh instances share one thread on a budget of 1:
  the same instances see the same frames in the same order, so the readings do not change);
* ONNX Runtime sessions (intra-op threads; inter-op 1), when they are created;
* torch's and OpenCV's process-wide thread counts, and the OpenMP/BLAS variables that libraries not
  yet loaded read at load time — these :func:`set_cpu_threads` sets.

Call :func:`set_cpu_threads` before the pipeline is built (a worker does it first thing). The
environment variable ``SYNCNET_FCN_THREADS`` sets the default budget of a process.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "SYNCNET_FCN_THREADS"
# what OpenMP, OpenBLAS, MKL and numexpr read when they are loaded
_LIBRARY_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_budget: int | None = None


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_threads() -> int:
    """This process's budget: what :func:`set_cpu_threads` set, else ``$SYNCNET_FCN_THREADS``, else
    :func:`available_cores`."""
    if _budget is not None:
        return _budget
    text = os.environ.get(ENV_VAR, "").strip()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    return available_cores()


def share_of_cores(workers: int, cores: int | None = None) -> int:
    """Threads for each of ``workers`` processes sharing ``cores`` (default: this machine's): at least 1."""
    return max(1, (cores or available_cores()) // max(1, workers))


def set_cpu_threads(threads: int | None) -> int:
    """Make ``threads`` (``None``: the default) this process's budget and apply it where the setting is
    process-wide (torch, OpenCV, and the OpenMP/BLAS variables for libraries loaded later). Returns
    the budget."""
    global _budget
    _budget = None if threads is None else max(1, int(threads))
    budget = cpu_threads()
    if threads is not None:
        for name in _LIBRARY_VARS:
            os.environ[name] = str(budget)
    import torch

    torch.set_num_threads(budget)
    try:
        torch.set_num_interop_threads(budget)
    except RuntimeError:  # only allowed before torch's first parallel work; then it stays as it was
        pass
    try:
        import cv2
    except ImportError:  # OpenCV comes with the landmark engine; without it there is nothing to set
        cv2 = None
    if cv2 is not None:
        cv2.setNumThreads(budget)
    _limit_loaded_blas(budget)
    return budget


def _limit_loaded_blas(budget: int) -> None:
    """numpy's BLAS reads its variable when numpy is loaded: if it already is, limit it in place."""
    if "numpy" not in sys.modules:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=budget)


__all__ = ["ENV_VAR", "available_cores", "cpu_threads", "set_cpu_threads", "share_of_cores"]
