"""POST /api/eval (a job over several uploads, table and CSV) and POST /api/fix (the corrected file)."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import schemathesis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # app.py lives at the repository root
from app import create_app  # noqa: E402
from syncnet_fcn.media import load_audio, shift_audio  # noqa: E402
from syncnet_fcn.repair import video_packets_digest, write_shifted  # noqa: E402


@pytest.fixture(scope="module")
def flask_app(isolated_engines, tmp_path_factory):
    return create_app({"SYNC_UPLOAD_DIR": str(tmp_path_factory.mktemp("uploads")), "TESTING": True,
                       "SYNC_EVAL_CACHE": str(tmp_path_factory.mktemp("eval_cache"))})


@pytest.fixture(scope="module")
def schema(flask_app):
    return schemathesis.openapi.from_dict(flask_app.test_client().get("/api/openapi.json").json)


def wait_for(client, url: str, seconds: float = 300) -> dict:
    deadline = time.time() + seconds
    while time.time() < deadline:
        body = client.get(url).json
        if body["state"] in ("done", "error"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job did not finish: {body}")


@pytest.mark.slow
def test_eval_job_scores_every_upload_and_serves_the_csv(flask_app, schema, clip):
    client = flask_app.test_client()
    good = clip("lrw_astorfi_sample1.mp4")
    data = {"videos": [(io.BytesIO(good.read_bytes()), "lrw_a.mp4"), (io.BytesIO(b"junk"), "junk_b.mp4")],
            "group_by": "prefix"}
    response = client.post("/api/eval", data=data)
    assert response.status_code == 202, response.json
    schema["/api/eval"]["POST"].validate_response(response)
    body = wait_for(client, response.json["status_url"])
    assert body["state"] == "done" and body["kind"] == "eval", body
    rows = {row["video"]: row for row in body["result"]["videos"]}
    assert rows["lrw_a.mp4"]["status"] == "ok" and rows["lrw_a.mp4"]["lse_c"] is not None
    assert rows["junk_b.mp4"]["status"] == "unreadable" and rows["junk_b.mp4"]["reason"]
    assert set(body["result"]["groups"]) == {"lrw", "junk"}
    assert body["result"]["overall"]["videos"] == 2 and body["result"]["overall"]["scored"] == 1
    csv = client.get(body["files"]["results.csv"])
    assert csv.status_code == 200
    lines = csv.data.decode().splitlines()
    assert lines[0].startswith("video,group,track,status") and any(",unreadable," in line for line in lines)


def test_eval_without_videos_is_400(flask_app, schema):
    response = flask_app.test_client().post("/api/eval", data={"engine": "auto"})
    assert response.status_code == 400 and "videos" in response.json["error"]["message"]
    schema["/api/eval"]["POST"].validate_response(response)


@pytest.mark.slow
def test_fix_returns_the_corrected_file(flask_app, schema, clip, tmp_path):
    client = flask_app.test_client()
    shifted = tmp_path / "talk.mpg"
    write_shifted(clip("grid_bbaf2n.mpg"), shifted, -5)  # audio 5 frames early: reads +5
    response = client.post("/api/fix", data={"video": (io.BytesIO(shifted.read_bytes()), "talk.mpg")})
    assert response.status_code == 200, response.data[:300]
    schema["/api/fix"]["POST"].validate_response(response)
    before, after = json.loads(response.headers["X-Sync-Before"]), json.loads(response.headers["X-Sync-After"])
    assert abs(before["offset_frames"] - 5) <= 1 and abs(after["offset_frames"]) <= 1
    fixed = tmp_path / "fixed.mpg"
    fixed.write_bytes(response.data)
    assert video_packets_digest(fixed) == video_packets_digest(shifted)
    audio = load_audio(fixed).astype(float)
    expected = shift_audio(load_audio(shifted), int(response.headers["X-Sync-Shift-Frames"])).astype(float)
    n = min(len(audio), len(expected)) - 2000
    assert np.corrcoef(audio[2000:n], expected[2000:n])[0, 1] > 0.9


def test_fix_refuses_a_file_that_is_not_a_video(flask_app, schema):
    response = flask_app.test_client().post("/api/fix", data={"video": (io.BytesIO(b"junk"), "x.mp4")})
    assert response.status_code == 415 and response.json["error"]["code"] == "invalid_media"
    schema["/api/fix"]["POST"].validate_response(response)
    response = flask_app.test_client().post("/api/fix", data={"video": (io.BytesIO(b"junk"), "x.mp4"),
                                                               "offset": "1.5"})
    assert response.status_code == 400
