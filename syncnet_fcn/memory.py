"""Giving memory back to the system in a long-running server (glibc malloc).

An analysis allocates and frees hundreds of megabytes (decoded frames, crops, feature arrays). glibc
keeps freed memory in per-thread arenas and returns it only when the top of a heap is free, so a server
whose requests run on many threads grows towards (arenas × peak) and stays there. Two remedies, both
no-ops where glibc is absent: fewer arenas (``MALLOC_ARENA_MAX`` overrides), and ``malloc_trim``
after each analysis (``SYNCNET_FCN_MALLOC_TRIM=0`` turns it off, for comparisons).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

_M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)
_lock = threading.Lock()


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def limit_malloc_arenas(count: int | None = None) -> bool:
    """Cap glibc's malloc arenas (``$MALLOC_ARENA_MAX`` wins when set; default 2). True if applied."""
    if _LIBC is None or not hasattr(_LIBC, "mallopt") or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, int(count or 2)))


def release_freed_memory() -> bool:
    """Return freed heap memory to the system (``malloc_trim(0)``); True if anything was released."""
    if _LIBC is None or not hasattr(_LIBC, "malloc_trim") or os.environ.get("SYNCNET_FCN_MALLOC_TRIM") == "0":
        return False
    with _lock:  # one trim at a time: a trim walks every arena under its lock
        return bool(_LIBC.malloc_trim(0))


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident memory of a process (default: this one) from /proc, or None where /proc is absent."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
