"""`syncnet-fcn` end to end: JSON schema on a real clip, the table, and every exit-code-2 path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from syncnet_fcn.cli import main

TRACK_KEYS = {
    "track_id", "start_frame", "end_frame", "bbox", "offset_frames", "offset_seconds", "confidence",
    "min_dist", "per_frame_confidence", "offset_curve", "reliable", "speaking_segments",
}
TOP_KEYS = {
    "video", "engine", "weights", "fps", "duration_s", "offset_frames", "offset_seconds", "confidence",
    "min_dist", "tracks", "sign_convention",
}


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """No weights anywhere: an empty cache and no override."""
    monkeypatch.setenv("SYNCNET_FCN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SYNCNET_FCN_WEIGHTS", raising=False)
    monkeypatch.setenv("SYNCNET_FCN_NO_PROJECT_WEIGHTS", "1")
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def random_official_weights(tmp_path_factory) -> Path:
    """An official-layout state dict with random (seeded) values, saved like the real file."""
    from syncnet_fcn.model import SyncNet, SyncNetConfig

    torch.manual_seed(0)
    net = SyncNet(SyncNetConfig.official())
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("weights") / "random_official_layout.model"
    torch.save(state, path)
    return path


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_schema(doc: dict, n_frames_max: int, max_offset: int = 15) -> None:
    assert TOP_KEYS <= doc.keys()
    assert doc["fps"] == 25
    assert doc["tracks"], "expected at least one face track"
    for track in doc["tracks"]:
        assert TRACK_KEYS <= track.keys()
        assert 0 <= track["start_frame"] <= track["end_frame"] < n_frames_max + 1
        n = track["end_frame"] - track["start_frame"] + 1
        assert len(track["per_frame_confidence"]) == n
        curve = track["offset_curve"]
        assert curve["offsets"] == list(range(-max_offset, max_offset + 1))
        assert len(curve["mean_dist"]) == 2 * max_offset + 1
        assert -max_offset <= track["offset_frames"] <= max_offset
        assert track["offset_seconds"] == pytest.approx(track["offset_frames"] / 25)
    main_track = max(doc["tracks"], key=lambda t: (t["reliable"], t["confidence"] or -1e9))
    assert doc["offset_frames"] == main_track["offset_frames"]
    assert doc["confidence"] == main_track["confidence"]


@pytest.mark.slow
def test_detect_json_schema_with_official_layout_weights(clip, random_official_weights, capsys, tmp_path):
    video = clip("syncnet_example.avi")
    out = tmp_path / "result.json"
    code, stdout, _ = run_cli(
        ["detect", video, "--engine", "fcn", "--weights", random_official_weights, "--json", "--out", out, "--quiet"],
        capsys,
    )
    assert code == 0
    doc = json.loads(stdout)
    check_schema(doc, n_frames_max=int(12.68 * 25) + 1)
    assert doc["engine"] == "fcn"
    assert "random_official_layout" in doc["weights"]
    # min_dist / confidence are the original's quantities: finite, confidence = median - min >= 0
    assert doc["min_dist"] > 0 and doc["confidence"] >= 0
    assert json.loads(out.read_text()) == doc


@pytest.mark.slow
def test_detect_landmark_table_and_json(clip, capsys, empty_cache):
    video = clip("syncnet_example.avi")
    code, stdout, _ = run_cli(["detect", video, "--quiet"], capsys)
    assert code == 0
    assert "engine landmark" in stdout and "main track" in stdout
    code, stdout, _ = run_cli(["detect", video, "--engine", "landmark", "--json", "--quiet"], capsys)
    assert code == 0
    doc = json.loads(stdout)
    check_schema(doc, n_frames_max=int(12.68 * 25) + 1)
    assert doc["engine"] == "landmark"


def test_a_muted_video_is_reported_as_no_reliable_sync_not_as_in_sync(clip, capsys, tmp_path, empty_cache):
    """A face with a silent soundtrack: the engine claims no offset, and the summary line must not
    read as a verdict ("in sync") either."""
    from conftest import write_test_video

    from syncnet_fcn.media import iter_frames, load_audio

    source = clip("grid_sbwe5n.mpg")
    muted = tmp_path / "muted.mp4"
    write_test_video(muted, [f for _, f in iter_frames(source)], np.zeros_like(load_audio(source)))
    code, stdout, _ = run_cli(["detect", muted, "--engine", "landmark", "--quiet"], capsys)
    assert code == 0
    verdict = [line for line in stdout.splitlines() if line.startswith("main track")]
    assert len(verdict) == 1 and "no reliable sync" in verdict[0] and "in sync (0 frames)" not in verdict[0]
    assert "digital silence" in stdout
    code, stdout, _ = run_cli(["detect", muted, "--engine", "landmark", "--json", "--quiet"], capsys)
    doc = json.loads(stdout)
    assert doc["reliable"] is False and doc["min_dist"] is None


def test_missing_file_exit_2(capsys, tmp_path):
    code, _, err = run_cli(["detect", tmp_path / "nope.mp4"], capsys)
    assert code == 2
    assert err.startswith("error:") and "nope.mp4" in err and err.count("\n") == 1
    code, _, err = run_cli(["detect", tmp_path], capsys)
    assert code == 2 and "is a directory" in err and err.count("\n") == 1


def test_random_bytes_exit_2(capsys, tmp_path):
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    code, _, err = run_cli(["detect", bogus, "--engine", "landmark", "--quiet"], capsys)
    assert code == 2
    assert err.startswith("error:") and "Traceback" not in err


def test_missing_weights_exit_2_names_file_and_url(clip, capsys, empty_cache):
    video = clip("syncnet_example.avi")
    code, _, err = run_cli(["detect", video, "--engine", "syncnet", "--quiet"], capsys)
    assert code == 2
    assert "syncnet_v2.model" in err
    assert "robots.ox.ac.uk" in err
    assert str(empty_cache) in err or "--weights" in err


def test_truncated_weights_exit_2(clip, capsys, tmp_path, random_official_weights):
    truncated = tmp_path / "truncated.model"
    truncated.write_bytes(random_official_weights.read_bytes()[:100_000])
    code, _, err = run_cli(["detect", clip("syncnet_example.avi"), "--engine", "fcn", "--weights", truncated], capsys)
    assert code == 2
    assert "truncated.model" in err


def test_bad_arguments_exit_2(clip, capsys):
    video = clip("syncnet_example.avi")
    code, _, err = run_cli(["detect", video, "--max-offset", "0", "--engine", "landmark"], capsys)
    assert code == 2 and "max_offset" in err
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(video), "--engine", "nonsense"])
    assert exc.value.code == 2


def test_fix_takes_every_engine_detect_takes(tmp_path, capsys):
    """One list of engine names: each name detect offers passes fix's parser (the missing file is what
    stops it, in one line), and a name outside it stops both at the parser."""
    from syncnet_fcn.cli import build_parser

    parser = build_parser(with_train_options=False)
    commands = parser._subparsers._group_actions[0].choices
    engines = {name: next(a.choices for a in commands[name]._actions if a.dest == "engine") for name in ("detect", "fix")}
    assert engines["fix"] == engines["detect"] and "fused" in engines["fix"] and "auto" in engines["fix"]
    missing = tmp_path / "missing.mp4"
    for engine in engines["detect"]:
        code, _, err = run_cli(["fix", missing, "-o", tmp_path / "out.mp4", "--engine", engine, "--quiet"], capsys)
        assert code == 2 and "no such file" in err and err.count("\n") == 1, (engine, err)
    with pytest.raises(SystemExit) as exc:
        main(["fix", str(missing), "-o", str(tmp_path / "out.mp4"), "--engine", "nonsense"])
    assert exc.value.code == 2


def test_out_refuses_to_overwrite_input(clip, capsys):
    video = clip("syncnet_example.avi")
    before = video.stat().st_size
    code, _, err = run_cli(["detect", video, "--out", video, "--engine", "landmark"], capsys)
    assert code == 2 and "overwrite" in err
    assert video.stat().st_size == before


def test_module_entry_point_and_console_script(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-m", "syncnet_fcn", "detect", str(tmp_path / "missing.mp4")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:")
    assert "Traceback" not in result.stderr


def test_thresholds_needs_two_readable_videos_exit_2(clip, capsys, tmp_path, random_official_weights):
    code, _, err = run_cli(["thresholds", tmp_path / "missing.mp4", "--weights", random_official_weights], capsys)
    assert code == 2 and err.startswith("error:") and "missing.mp4" in err
    code, _, err = run_cli(["thresholds", clip("syncnet_example.avi"), "--weights", random_official_weights], capsys)
    assert code == 2 and "at least two videos" in err and err.count("\n") == 1
