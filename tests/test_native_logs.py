"""Native log filtering: mediapipe's routine absl/TFLite lines are dropped, everything else kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Lines as mediapipe 0.10.21 writes them to descriptor 2 (copied from a run of `detect`).
ROUTINE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "W0000 00:00:1795502484.776079   28170 inference_feedback_manager.cc:114] Feedback manager requires "
    "a model with a single signature inference. Disabling support for feedback tensors.",
    "I0000 00:00:1717471395.513658  226326 gl_context_egl.cc:85] Successfully initialized EGL.",
]
KEPT = [
    "E0000 00:00:1795502484.776079   28170 model.cc:1] a native error someone needs to see",
    "F1124 06:30:01.123456   28170 graph.cc:9] Check failed: fatal",
    "some library's own message",
]

WRITER = """
import os, sys
from syncnet_fcn.native_logs import filter_native_stderr
installed = filter_native_stderr()
for line in sys.argv[1].split("|"):
    os.write(2, line.encode() + b"\\n")      # as native code writes: straight to descriptor 2
print("python says hello", file=sys.stderr)  # Python's own stderr
os.write(2, b"no newline at the end")
print("installed" if installed else "not installed")
"""


def run_writer(env_extra=None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "SYNCNET_FCN_NATIVE_LOGS"}
    env.update({"PYTHONPATH": str(REPO)}, **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", WRITER, "|".join(ROUTINE + KEPT)], capture_output=True,
                          text=True, env=env, timeout=60)


def test_routine_native_lines_are_dropped_and_the_rest_kept():
    result = run_writer()
    assert result.returncode == 0 and result.stdout.strip() == "installed"
    for line in ROUTINE:
        assert line not in result.stderr
    for line in KEPT + ["python says hello", "no newline at the end"]:
        assert line in result.stderr


def test_filter_can_be_turned_off():
    result = run_writer({"SYNCNET_FCN_NATIVE_LOGS": "1"})
    assert result.stdout.strip() == "not installed"
    for line in ROUTINE + KEPT:
        assert line in result.stderr


def test_detect_on_a_real_clip_shows_no_mediapipe_log_lines(clip):
    env = {key: value for key, value in os.environ.items() if key != "SYNCNET_FCN_NATIVE_LOGS"}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-m", "syncnet_fcn", "detect", str(clip("syncnet_example.avi")),
                             "--engine", "landmark"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "main track 0" in result.stdout
    assert "absl" not in result.stderr and "W0000" not in result.stderr and "TensorFlow Lite" not in result.stderr
    assert "measuring sync" in result.stderr  # the progress bar still shows
