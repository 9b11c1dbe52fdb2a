"""Hostile and awkward input, through the CLI and the REST API: never a traceback, never a 5xx.

The corpus (``hostile_corpus.py``, 46 kinds) is built on the fly from a real clip. Every case must end
with exit code 0 or 2 (one ``error:`` line) on the command line and 2xx/4xx JSON over HTTP; cases with a
known right answer are checked for it (the limit named, the truncation reported, 4K let through).
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO, clip_path
from hostile_corpus import build_corpus

sys.path.insert(0, str(REPO))
from app import create_app  # noqa: E402
from syncnet_fcn.cli import main as cli_main  # noqa: E402

SOURCE_CLIP = "syncnet_example.avi"
KINDS = [
    "empty", "random_bytes", "text_as_video", "truncated_30pct_avi", "truncated_moov_last",
    "truncated_30pct_faststart", "truncated_header", "corrupt_middle", "audio_only", "audio_only_wav",
    "video_only", "image_png", "image_jpg_named_mp4", "gif", "one_frame", "short_0_3s", "audio_8khz",
    "audio_5_1", "fps_60", "fps_1", "variable_frame_rate", "rotated_90", "uhd_4k", "huge_8192",
    "extreme_aspect_4096x16", "tiny_16x16", "odd_size_225x223", "no_face", "noise_frames", "faces_3x3",
    "silent", "audio_much_longer", "video_much_longer", "two_audio_streams", "many_streams", "yuv444",
    "mpeg_ts", "webm_vp9_opus", "wrong_extension", "no_extension", "odd_name", "long_name", "symlink",
    "broken_symlink", "directory", "missing",
]
NOT_UPLOADABLE = {"broken_symlink", "directory", "missing"}  # no file to send


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    cases = build_corpus(tmp_path_factory.mktemp("hostile"), clip_path(SOURCE_CLIP))
    assert sorted(cases) == sorted(KINDS)
    return cases


@pytest.fixture(scope="module")
def api(isolated_engines, tmp_path_factory):
    uploads = tmp_path_factory.mktemp("uploads")
    app = create_app({"SYNC_UPLOAD_DIR": str(uploads), "SYNC_QUEUE_WAIT_S": 60, "TESTING": True})
    yield app.test_client()
    assert not any(uploads.iterdir()), "uploads left behind"


def _expectations(kind: str, code: int, message: str, document: dict | None) -> None:
    """What is known to be right for some kinds, beyond 'no crash'."""
    if kind == "huge_8192":
        assert code == 2 and "SYNCNET_FCN_MAX_FRAME_PIXELS" in message and "8192×8192" in message
    if kind == "many_streams":
        assert code == 2 and "SYNCNET_FCN_MAX_STREAMS" in message
    if kind == "uhd_4k":
        assert "MAX_FRAME_PIXELS" not in message  # real 4K footage is let through
    if kind == "truncated_30pct_faststart":
        text = message if code == 2 else (document or {}).get("warning") or ""
        assert "truncated" in text and "2.0 s" in text, text
    if kind in ("audio_only", "audio_only_wav"):
        assert code == 2 and "audio-only" in message
    if kind in ("image_png", "image_jpg_named_mp4"):
        assert code == 2 and "still image" in message
    if kind in ("symlink", "odd_name", "wrong_extension", "no_extension", "long_name"):
        assert code == 0, message  # a fine video under an awkward name or path


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_cli_ends_with_0_or_2_and_one_error_line(corpus, isolated_engines, kind, capsys, tmp_path):
    out = tmp_path / "result.json"
    try:
        code = cli_main(["detect", str(corpus[kind]), "--quiet", "--json", "--out", str(out)])
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert code in (0, 2), captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    if code == 2:
        assert len(errors) == 1, captured.err
    document = json.loads(out.read_text()) if code == 0 else None
    _expectations(kind, code, errors[0] if errors else "", document)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in KINDS if k not in NOT_UPLOADABLE])
def test_api_answers_2xx_or_4xx_json(corpus, api, kind):
    path = corpus[kind]
    response = api.post("/api/detect", data={"video": (io.BytesIO(path.read_bytes()), path.name)},
                        content_type="multipart/form-data")
    assert response.status_code < 500, response.json
    assert response.is_json
    if response.status_code >= 400:
        message = response.json["error"]["message"]
        assert message and "Traceback" not in message
        code = 2
    else:
        message, code = "", 0
    if kind == "huge_8192":
        assert response.status_code == 413
    _expectations(kind, code, message, response.json if code == 0 else None)


# -- argument errors: found before any analysis, one line, exit 2 ----------------------------------------


@pytest.mark.parametrize("extra, words", [
    (["--device", "bogus"], "unknown device"),
    (["--device", "cuda:99"], "cuda"),
    (["--out", "/proc/no/such/folder/result.json"], "cannot create the folder"),
    (["--out", "."], "is a directory"),
    (["--weights", ".", "--engine", "fcn"], "is a directory"),
    (["--min-face-size", "nan"], "minimum face size"),
    (["--min-track-frames", "0"], "minimum track length"),
    (["--max-offset", "0"], "max_offset"),
])
def test_argument_errors_exit_2_before_the_analysis(extra, words, capsys, monkeypatch):
    import syncnet_fcn.pipeline as pipeline

    def no_analysis(*args, **kwargs):
        raise AssertionError("the analysis started despite a bad argument")

    monkeypatch.setattr(pipeline.SyncPipeline, "analyze", no_analysis)
    code = cli_main(["detect", str(clip_path(SOURCE_CLIP)), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and words in err, err


def test_a_real_process_prints_no_traceback(corpus, tmp_path):
    """The installed entry point, not just main(): exit code 2 and one line for a refused file."""
    run = subprocess.run([sys.executable, "-m", "syncnet_fcn", "detect", str(corpus["huge_8192"]), "--quiet"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error:") and "Traceback" not in run.stderr


@pytest.mark.slow
def test_size_filter_is_named_when_it_removes_every_face(isolated_engines, capsys):
    code = cli_main(["detect", str(clip_path(SOURCE_CLIP)), "--quiet", "--min-face-size", "1e9"])
    err = capsys.readouterr().err
    assert code == 2 and "face size" in err, err


# -- server defaults ----------------------------------------------------------------------------------------


def test_api_key_is_required_on_api_routes_when_set(isolated_engines, tmp_path):
    app = create_app({"SYNC_API_KEY": "s3cret", "SYNC_UPLOAD_DIR": str(tmp_path), "TESTING": True})

    @app.get("/api/added-later")  # a route another blueprint might add: covered app-wide
    def added_later():
        return {"ok": True}

    client = app.test_client()
    for path in ("/api/jobs/123", "/api/added-later"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
        assert "Bearer" in refused.headers["WWW-Authenticate"]
        wrong = client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "not this server's" in wrong.json["error"]["message"]
    assert client.post("/api/detect").status_code == 401
    assert client.get("/api/added-later", headers={"Authorization": "Bearer s3cret"}).json == {"ok": True}
    assert client.post("/api/detect", headers={"Authorization": "Bearer s3cret"}).status_code == 400  # no video
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json["api_key_required"] is True
    assert client.get("/api/openapi.json").status_code == 200
    page = client.get("/").get_data(as_text=True)
    assert 'id="api-key-row" hidden' not in page and "SYNCNET_FCN_API_KEY" in page
    open_app = create_app({"SYNC_UPLOAD_DIR": str(tmp_path), "TESTING": True, "SYNC_API_KEY": None})
    assert 'id="api-key-row" hidden' in open_app.test_client().get("/").get_data(as_text=True)


def test_health_and_results_name_weights_without_server_paths(isolated_engines, tmp_path, monkeypatch):
    import torch

    from syncnet_fcn.model import SyncNet
    from syncnet_fcn.weights import sha256_file

    folder = tmp_path / "secret_server_folder"
    folder.mkdir()
    weights = folder / "my_weights.pt"
    torch.save(SyncNet().state_dict(), weights)
    app = create_app({"SYNC_WEIGHTS": str(weights), "SYNC_UPLOAD_DIR": str(tmp_path), "TESTING": True})
    health = app.test_client().get("/api/health").get_data(as_text=True)
    assert "secret_server_folder" not in health
    assert f"my_weights.pt (sha256 {sha256_file(weights)})" in health
    from syncnet_fcn.weights import cache_dir

    missing = create_app({"SYNC_UPLOAD_DIR": str(tmp_path), "TESTING": True}).test_client().get("/api/health")
    assert not missing.json["engines"]["fcn"]["available"]  # no weights: the reason says where they go...
    assert str(cache_dir()) not in missing.get_data(as_text=True)  # ...without the server's folder


def test_default_bind_is_loopback(monkeypatch):
    import waitress

    import app as app_module

    seen = {}
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.setattr(waitress, "serve", lambda app, **kw: seen.update(kw))
    app_module.serve([])
    assert seen["host"] == "127.0.0.1"
    assert seen["max_request_body_size"] <= app_module.app.config["MAX_CONTENT_LENGTH"] + 2**20
    app_module.serve(["--host", "0.0.0.0", "--port", "5123"])
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 5123)


def test_gradio_binds_loopback_limits_uploads_and_makes_no_temp_folder_on_import(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    sys.modules.pop("app_gradio", None)
    import app_gradio

    assert not list(tmp_path.glob("syncnet_fcn_gradio_*"))
    seen = {}
    monkeypatch.setattr(app_gradio.demo, "queue", lambda **kw: app_gradio.demo)
    monkeypatch.setattr(app_gradio.demo, "launch", lambda **kw: seen.update(kw))
    app_gradio.main([])
    assert seen["server_name"] == "127.0.0.1"
    assert seen["max_file_size"] == create_app({"TESTING": True}).config["MAX_CONTENT_LENGTH"]


# -- request bodies -----------------------------------------------------------------------------------------


def test_a_form_field_flood_is_named_as_such(isolated_engines, tmp_path):
    client = create_app({"SYNC_UPLOAD_DIR": str(tmp_path), "TESTING": True}).test_client()
    fields = {f"f{i}": "x" for i in range(1500)}
    response = client.post("/api/detect", data=fields, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "too many fields" in response.json["error"]["message"]


@pytest.mark.parametrize("field, value", [("engine", ","), ("engine", " , ")])
def test_empty_engine_lists_are_named_as_such(isolated_engines, tmp_path, field, value):
    client = create_app({"SYNC_UPLOAD_DIR": str(tmp_path), "TESTING": True}).test_client()
    response = client.post("/api/detect", data={field: value, "video": (io.BytesIO(b"x"), "a.mp4")},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and "no engine name" in response.json["error"]["message"]


def test_chunked_upload_to_the_production_server_stops_at_the_limit(isolated_engines, tmp_path):
    """waitress buffers a body before the app sees it: it must stop reading at the upload limit."""
    from waitress.server import create_server

    import app as app_module

    limit = 2**20
    flask_app = create_app({"MAX_CONTENT_LENGTH": limit, "SYNC_UPLOAD_DIR": str(tmp_path)})
    server = create_server(flask_app, host="127.0.0.1", port=0, max_request_body_size=limit + 2**20)
    assert app_module.serve.__doc__  # the same setting serve() passes
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    sent = 0
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=30)
        connection.putrequest("POST", "/api/detect")
        connection.putheader("Content-Type", "multipart/form-data; boundary=frontier")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        chunk = b"x" * 65536
        try:
            while sent < 200 * limit:
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        try:
            status = connection.getresponse().status
        except (ConnectionResetError, http.client.RemoteDisconnected):
            status = None
    finally:
        server.close()
    assert sent < 200 * limit, "the server read a 200 MB chunked body instead of stopping at 1 MB"
    assert status in (413, None)
    time.sleep(0.1)
