"""Keep native libraries' routine log lines off the user's terminal.

mediapipe's C++ core logs through absl before anything initialises absl logging, so each face model it
builds writes lines such as ``W0000 00:00:… inference_feedback_manager.cc:114] Feedback manager
requires …`` and ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to file
descriptor 2. No environment variable silences them (``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL``
are ignored by this build). A user running ``syncnet-fcn detect`` sees a dozen such lines around the
progress bar and may take them for a fault.

:func:`filter_native_stderr` (called once by each front end) points descriptor 2 at a pipe. A thread
reads it line by line, drops absl's info and warning lines and TFLite's delegate notice, and passes
everything else — errors, fatal checks, anything unknown — on to the real stderr. Python's own
``sys.stderr`` (progress bars, ``error: …`` lines, tracebacks) is re-bound to the real stderr directly,
so it is neither delayed nor filtered. ``SYNCNET_FCN_NATIVE_LOGS=1`` leaves descriptor 2 alone.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl / glog line prefix: severity letter, MMDD, time (before absl is initialised: "00:00:<epoch
# seconds>"), thread id, file:line]. I (info) and W (warning) are routine; E and F lines are kept.
ROUTINE_LINE = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]"
    rb"|INFO: Created TensorFlow Lite"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)

_installed = False
_lock = threading.Lock()


def filter_native_stderr() -> bool:
    """Filter what native code writes to descriptor 2 for the rest of the process; True if installed.

    Does nothing (returns False) when asked not to, when already installed, or when stderr is not a
    real descriptor (e.g. under a test runner that captured it).
    """
    global _installed
    with _lock:
        if _installed or os.environ.get("SYNCNET_FCN_NATIVE_LOGS") == "1":
            return False
        try:
            stderr_fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            return False
        if stderr_fd != 2:
            return False
        sys.stderr.flush()
        real_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        sys.stderr = open(real_fd, "w", buffering=1, encoding=encoding, errors="backslashreplace", closefd=False)
        forwarder = threading.Thread(target=_forward, args=(read_fd, real_fd), name="native-stderr", daemon=True)
        forwarder.start()
        atexit.register(_restore, real_fd, forwarder)
        _installed = True
        return True


def _forward(read_fd: int, real_fd: int) -> None:
    pending = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        kept = [line + b"\n" for line in lines if not ROUTINE_LINE.match(line)]
        if kept:
            _write_all(real_fd, b"".join(kept))
    if pending and not ROUTINE_LINE.match(pending):
        _write_all(real_fd, pending)
    os.close(read_fd)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _restore(real_fd: int, forwarder: threading.Thread) -> None:
    """At exit: give descriptor 2 back, which closes the pipe, so the forwarder drains what is left."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(real_fd, 2)
    forwarder.join(timeout=2.0)
