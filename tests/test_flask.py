"""The Flask REST API: every endpoint, every error path, responses checked against its OpenAPI document.

The app runs the real library on real clips (skipped when ../shared/clips is absent). Engines are pinned
by environment: no SyncNet weights, so ``landmark`` is the engine that runs, except in the test that
builds random weights (labelled as such) to exercise several engines at once.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
import time
import wave

import cv2
import numpy as np
import pytest
import schemathesis
import torch
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import REPO, write_test_video

sys.path.insert(0, str(REPO))  # app.py lives at the repository root, beside the package
from app import create_app  # noqa: E402
from syncnet_fcn.pipeline import SyncPipeline

SHORT_CLIP = "grid_bbaf2n.mpg"  # 3 s, one face: keeps the end-to-end tests quick
EXAMPLE_CLIP = "syncnet_example.avi"


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def flask_app(isolated_engines, upload_dir):
    """One app for the module, so its pipelines are built once, as in production."""
    return create_app({"SYNC_UPLOAD_DIR": str(upload_dir), "SYNC_QUEUE_WAIT_S": 0.3, "TESTING": True})


@pytest.fixture
def client(flask_app):
    return flask_app.test_client()


@pytest.fixture(autouse=True)
def uploads_are_removed(upload_dir):
    """After every test, no upload may be left behind (jobs get a moment to clean up)."""
    yield
    deadline = time.time() + 10
    while any(upload_dir.iterdir()) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(upload_dir.iterdir()), f"temporary uploads left: {list(upload_dir.iterdir())}"


@pytest.fixture(scope="module")
def api_schema(flask_app):
    return schemathesis.openapi.from_dict(flask_app.test_client().get("/api/openapi.json").json)


@pytest.fixture
def conforms(api_schema):
    """``conforms(path, method, response)``: the response is documented and matches its schema."""

    def check(path: str, method: str, response) -> None:
        api_schema[path][method].validate_response(response)

    return check


def upload(path, name: str | None = None, **fields) -> dict:
    return {"video": (io.BytesIO(path.read_bytes()), name or path.name), **fields}


def tone(seconds: float, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (np.sin(2 * np.pi * 220 * t) * 4000).astype(np.int16)


def png_bytes() -> bytes:
    image = np.zeros((64, 96, 3), np.uint8)
    cv2.circle(image, (48, 32), 20, (0, 200, 255), -1)
    return cv2.imencode(".png", image)[1].tobytes()


def wav_bytes(seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(tone(seconds).tobytes())
    return buffer.getvalue()


def decode_png_data_uri(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "plot is not a decodable PNG"
    return image


# -- service endpoints ------------------------------------------------------------------------------------


def test_health_says_which_engines_run_and_why_others_do_not(client, conforms):
    response = client.get("/api/health")
    assert response.status_code == 200
    conforms("/api/health", "GET", response)
    body = response.json
    assert set(body["engines"]) == {"syncnet", "fcn", "landmark", "fused"}
    assert body["engines"]["landmark"]["available"]
    assert body["default_engines"] == ["landmark"]
    for name in ("syncnet", "fcn", "fused"):
        assert not body["engines"][name]["available"]
        assert "weights" in body["engines"][name]["reason"].lower()
    assert body["limits"]["max_upload_bytes"] == client.application.config["MAX_CONTENT_LENGTH"]


def test_openapi_document_describes_every_api_route(client, api_schema):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json
    assert doc["openapi"].startswith("3.")
    documented = {path.replace("{", "<").replace("}", ">") for path in doc["paths"]}
    routes = {rule.rule for rule in client.application.url_map.iter_rules() if rule.rule.startswith("/api/")}
    assert routes == documented
    for path, item in doc["paths"].items():
        for method in item:
            api_schema[path][method]  # every operation resolves, $refs included


def test_index_page_has_the_upload_form(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for marker in ('id="upload-form"', 'type="file"', 'id="result-table"', 'id="plot-confidence"', "app.js"):
        assert marker in page
    assert client.get("/static/app.js").status_code == 200


def test_unknown_api_route_is_a_json_404(client):
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


# -- bad input: 4xx with a JSON error, never a 500 --------------------------------------------------------


BAD_UPLOADS = {  # name → (file bytes, upload name, expected error code); all 415
    "empty file": (lambda: b"", "empty.mp4", "invalid_media"),
    "random bytes named .mp4": (lambda: np.random.default_rng(0).bytes(50_000), "random.mp4", "invalid_media"),
    "audio-only file": (wav_bytes, "speech.mp4", "no_video_stream"),
    "png image named .mp4": (png_bytes, "picture.mp4", "no_video_stream"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
@pytest.mark.parametrize("endpoint", ["/api/detect", "/api/analyze", "/api/jobs"])
def test_files_that_are_not_videos_are_refused_by_decoding(client, conforms, case, endpoint):
    make, name, code = BAD_UPLOADS[case]
    response = client.post(endpoint, data={"video": (io.BytesIO(make()), name)})
    conforms(endpoint, "POST", response)
    assert response.status_code == 415, response.json
    error = response.json["error"]
    assert error["code"] == code
    assert error["message"] and "\n" not in error["message"] and "Traceback" not in error["message"]
    assert "/tmp" not in error["message"]  # no server paths in messages


def test_video_without_audio_is_422(client, conforms, tmp_path):
    frames = [np.full((96, 96, 3), 120, np.uint8) for _ in range(30)]
    video = write_test_video(tmp_path / "silent.mp4", frames, audio=None)
    response = client.post("/api/detect", data=upload(video))
    conforms("/api/detect", "POST", response)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "no_audio"


def test_video_without_faces_is_422(client, conforms, tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 40, (120, 160, 3), dtype=np.uint8) for _ in range(50)]
    video = write_test_video(tmp_path / "noface.mp4", frames, tone(2))
    response = client.post("/api/analyze", data=upload(video))
    conforms("/api/analyze", "POST", response)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "no_face"


def test_missing_video_field_is_400(client, conforms):
    response = client.post("/api/detect", data={"engine": "auto"})
    conforms("/api/detect", "POST", response)
    assert response.status_code == 400
    assert "video" in response.json["error"]["message"]


@pytest.mark.parametrize("fields, words", [
    ({"max_offset": "abc"}, "max_offset"),
    ({"max_offset": "0"}, "max_offset"),
    ({"max_offset": "3.5"}, "max_offset"),
    ({"engine": "wav2lip"}, "unknown engine"),
    ({"engine": "syncnet"}, "weights"),  # known, but cannot run without weights
])
def test_bad_options_are_400(client, conforms, clip, fields, words):
    response = client.post("/api/detect", data=upload(clip(SHORT_CLIP), **fields))
    conforms("/api/detect", "POST", response)
    assert response.status_code == 400, response.json
    assert words in response.json["error"]["message"]


def test_oversized_body_is_413_before_the_body_is_read(isolated_engines, upload_dir):
    small = create_app({"MAX_CONTENT_LENGTH": 10_000, "SYNC_UPLOAD_DIR": str(upload_dir)})

    class WatchedStream(io.BytesIO):
        bytes_read = 0

        def read(self, *args):
            chunk = super().read(*args)
            WatchedStream.bytes_read += len(chunk)
            return chunk

    body = WatchedStream(b"x" * 50_000)
    response = small.test_client().post(
        "/api/detect", input_stream=body, content_length=50_000,
        content_type="multipart/form-data; boundary=frontier",
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"
    assert WatchedStream.bytes_read == 0


def test_oversized_chunked_body_is_413(isolated_engines, upload_dir, clip):
    """Without a Content-Length (chunked upload) the limit applies while the form is read."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import EnvironBuilder, encode_multipart, run_wsgi_app

    small = create_app({"MAX_CONTENT_LENGTH": 100_000, "SYNC_UPLOAD_DIR": str(upload_dir)})
    video = clip(EXAMPLE_CLIP)  # 1.1 MB
    boundary, body = encode_multipart({"video": FileStorage(io.BytesIO(video.read_bytes()), video.name)})
    environ = EnvironBuilder(path="/api/analyze", method="POST", input_stream=io.BytesIO(body),
                             content_type=f"multipart/form-data; boundary={boundary}").get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # what a server sets for a chunked body
    chunks, status, _ = run_wsgi_app(small, environ)
    assert status.startswith("413")
    assert json.loads(b"".join(chunks))["error"]["code"] == "too_large"


# -- concurrency: a bounded pool, 503 + Retry-After beyond it ---------------------------------------------


def test_requests_beyond_the_worker_pool_get_503_with_retry_after(flask_app, client, conforms, clip):
    sync = flask_app.extensions["syncnet_fcn"]
    assert sync.slots.acquire(timeout=30)  # every worker busy
    try:
        started = time.perf_counter()
        response = client.post("/api/detect", data=upload(clip(SHORT_CLIP)))
        waited = time.perf_counter() - started
    finally:
        sync.slots.release()
    conforms("/api/detect", "POST", response)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "busy"
    assert int(response.headers["Retry-After"]) > 0
    assert waited >= flask_app.config["SYNC_QUEUE_WAIT_S"]  # it queued briefly first


def test_jobs_beyond_the_queue_get_503(isolated_engines, upload_dir, conforms, tmp_path):
    small = create_app({"SYNC_MAX_PENDING_JOBS": 1, "SYNC_UPLOAD_DIR": str(upload_dir)})
    client = small.test_client()
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 40, (64, 64, 3), dtype=np.uint8) for _ in range(30)]
    video = write_test_video(tmp_path / "noface.mp4", frames, tone(1.2))
    sync = small.extensions["syncnet_fcn"]
    sync.slots.acquire()
    try:
        first = client.post("/api/jobs", data=upload(video))
        assert first.status_code == 202
        second = client.post("/api/jobs", data=upload(video))
    finally:
        sync.slots.release()
    conforms("/api/jobs", "POST", second)
    assert second.status_code == 503 and "Retry-After" in second.headers
    # the queued job still runs once a worker frees up, and reports its error in the job
    final = wait_for_job(client, first.json["status_url"])
    assert final["state"] == "error" and final["error"]["code"] == "no_face"


def wait_for_job(client, url: str, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = client.get(url).json
        if body["state"] in ("done", "error"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {url} did not finish in {timeout} s")


# -- real clips end to end --------------------------------------------------------------------------------


@pytest.mark.slow
def test_detect_returns_what_the_library_returns(client, conforms, clip, isolated_engines):
    video = clip(EXAMPLE_CLIP)
    response = client.post("/api/detect", data=upload(video))
    assert response.status_code == 200, response.json
    conforms("/api/detect", "POST", response)
    body = response.json
    expected = SyncPipeline(engine="auto").run(video).to_dict()
    assert body["video"] == EXAMPLE_CLIP  # the client's name, not a server path
    for key in ("engine", "offset_frames", "confidence", "min_dist", "main_track_id", "reliable", "max_offset"):
        assert body[key] == expected[key], key
    assert [t["per_frame_confidence"] for t in body["tracks"]] == [t["per_frame_confidence"] for t in expected["tracks"]]
    assert "boxes" not in body["tracks"][0]


def test_analyze_returns_curves_tracks_and_plots(client, conforms, clip):
    response = client.post("/api/analyze", data=upload(clip(SHORT_CLIP), max_offset="10"))
    assert response.status_code == 200, response.json
    conforms("/api/analyze", "POST", response)
    doc = response.json
    assert list(doc["engines"]) == ["landmark"]
    report = doc["engines"]["landmark"]
    assert report["max_offset"] == 10
    track = report["tracks"][0]
    assert track["offset_curve"]["offsets"] == list(range(-10, 11))
    assert len(track["per_frame_confidence"]) == track["n_frames"] == len(track["boxes"])
    assert len(doc["summary"]) == len(report["tracks"])
    main_row = doc["summary"][0]
    assert main_row["main"] and main_row["offset_frames"] == report["offset_frames"]
    assert main_row["offset_ms"] == report["offset_frames"] * 40
    for name in ("confidence", "offset_curves", "speaking", "preview"):
        image = decode_png_data_uri(doc["plots"][name])
        assert image.shape[0] > 100 and image.shape[1] > 300
        assert image.std() > 10  # something was drawn


def test_analyze_reuses_one_pipeline_across_requests(flask_app, client, clip):
    sync = flask_app.extensions["syncnet_fcn"]
    video = clip(SHORT_CLIP)
    first = client.post("/api/analyze", data=upload(video, plots="none"))
    builds = sync.pipelines.builds
    second = client.post("/api/analyze", data=upload(video, plots="none"))
    assert first.status_code == second.status_code == 200
    assert "plots" not in second.json
    assert sync.pipelines.builds == builds  # the second request built nothing
    assert _same_readings(first.json, second.json)


def _same_readings(a: dict, b: dict) -> bool:
    strip = lambda doc: {k: {**r, "timings": None} for k, r in doc["engines"].items()}  # noqa: E731
    return strip(a) == strip(b)


def test_job_reports_progress_then_the_result(client, conforms, clip):
    response = client.post("/api/jobs", data=upload(clip(SHORT_CLIP)))
    assert response.status_code == 202
    conforms("/api/jobs", "POST", response)
    url = response.json["status_url"]
    assert response.headers["Location"].endswith(url)
    seen = []
    deadline = time.time() + 300
    while time.time() < deadline:
        status = client.get(url)
        conforms("/api/jobs/{job_id}", "GET", status)
        seen.append(status.json["progress"])
        if status.json["state"] in ("done", "error"):
            break
        time.sleep(0.05)
    body = status.json
    assert body["state"] == "done", body
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert body["result"]["video"] == SHORT_CLIP
    assert set(body["result"]["plots"]) == {"confidence", "offset_curves", "speaking", "preview"}


def test_unknown_job_is_404(client, conforms):
    response = client.get("/api/jobs/0123456789abcdef")
    conforms("/api/jobs/{job_id}", "GET", response)
    assert response.status_code == 404


def test_concurrent_requests_share_the_pool_and_all_succeed(isolated_engines, upload_dir, clip):
    app = create_app({"SYNC_WORKERS": 1, "SYNC_QUEUE_WAIT_S": 120, "SYNC_UPLOAD_DIR": str(upload_dir)})
    video = clip(SHORT_CLIP)
    results = []

    def call():
        results.append(app.test_client().post("/api/detect", data=upload(video)))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200]
    assert results[0].json["offset_frames"] == results[1].json["offset_frames"]
    assert app.extensions["syncnet_fcn"].pipelines.builds == 1


@pytest.mark.slow
def test_every_engine_runs_with_random_weights(upload_dir, clip, tmp_path, monkeypatch):
    """RANDOM weights (official layout): the numbers mean nothing, the plumbing must work."""
    from syncnet_fcn.model import SyncNet, SyncNetConfig

    torch.manual_seed(0)
    weights = tmp_path / "random_official_layout.model"
    torch.save(SyncNet(SyncNetConfig.official()).state_dict(), weights)
    monkeypatch.setenv("SYNCNET_FCN_WEIGHTS", str(weights))
    monkeypatch.setenv("SYNCNET_FCN_NO_PROJECT_WEIGHTS", "1")
    app = create_app({"SYNC_UPLOAD_DIR": str(upload_dir)})
    client = app.test_client()
    health = client.get("/api/health").json
    runnable = [name for name, s in health["engines"].items() if s["available"]]
    # with project checkpoints hidden, fused (which needs the light one) is off and says why
    assert runnable == ["syncnet", "fcn", "landmark"]
    assert "light checkpoint" in health["engines"]["fused"]["reason"]
    response = client.post("/api/analyze", data=upload(clip(SHORT_CLIP), engines="all"))
    assert response.status_code == 200, response.json
    doc = response.json
    assert list(doc["engines"]) == runnable
    assert {row["engine"] for row in doc["summary"]} == set(runnable)
    # the original and the fully-convolutional engine share weights: same reading
    assert doc["engines"]["syncnet"]["offset_frames"] == doc["engines"]["fcn"]["offset_frames"]
    decode_png_data_uri(doc["plots"]["offset_curves"])


# -- fuzzing: whatever the form holds, the answer is documented and never a 5xx ---------------------------


def test_fuzzed_requests_never_get_a_server_error(flask_app):
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", flask_app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [("/api/detect", "POST"), ("/api/analyze", "POST"), ("/api/jobs", "POST"),
                  ("/api/jobs/{job_id}", "GET"), ("/api/health", "GET")]
    for path, method in operations:

        @given(case=schema[path][method].as_strategy())
        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(checks=checks)

        run()
