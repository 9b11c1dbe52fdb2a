"""The timeline on real clips: identities, voices off screen, resume, offset jumps, formats, errors, API."""

from __future__ import annotations

import csv
import io
import re
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import CLIPS, REPO, clip_path

pytest.importorskip("dlib", reason="the timeline extra (dlib) is not installed")
pytest.importorskip("resemblyzer", reason="the timeline extra (resemblyzer) is not installed")
sys.path.insert(0, str(REPO / "benchmarks"))
from programme import Part, compose  # noqa: E402

from syncnet_fcn.cli import main  # noqa: E402
from syncnet_fcn.errors import InvalidArgumentError  # noqa: E402

PRESENTER = "edtalk_pose_source2.mp4"  # 60 s, one man: the enrolled person A
GUEST = "mimictalk_German_20s.mp4"  # another person
# The guest's part starts 10 s into the clip: the timeline learns a voice only from >= 2 s of speech the
# lips confirm (window_speakers.VOICE_LEARN_FRAMES), and on the clip's first 8 s the retrained landmark
# engine clears its lone-face speaking bar (speaking_threshold) on one 0.8-s stretch only, so the guest
# never gets a voice of their own; from 10 s on its lip-confirmed frames (1.56 s) lie close enough together
# to make one stretch (gaps under 2 s are bridged) and the voice is learnt (benchmarks/timeline_guest.py).
GUEST_FROM = 250
STRANGER = "wav2lipgfpgan_kim_7s_raw.mp4"  # a voice nobody enrolled
WINDOW_S = 5.0
JUMP_AT_S = 10.0


def _frame(name: str, index: int) -> np.ndarray:
    from syncnet_fcn.media import iter_frames

    return next(iter_frames(clip_path(name), start_frame=index, end_frame=index + 1))[1]


@pytest.fixture(scope="module")
def show(tmp_path_factory):
    """A 38-s programme: A talks (audio delayed 5 frames from 10 s on), a guest, A returns, A's voice
    over an empty frame, then a stranger's voice over an empty frame."""
    for name in (PRESENTER, GUEST, STRANGER):
        clip_path(name)
    folder = tmp_path_factory.mktemp("timeline")
    a, b = CLIPS / PRESENTER, CLIPS / GUEST
    parts = [
        Part(a, 250, start_frame=0, speaker="A"),
        Part(a, 125, start_frame=250, shift_frames=5, speaker="A"),
        Part(b, 200, start_frame=GUEST_FROM, speaker="guest"),
        Part(a, 125, start_frame=375, shift_frames=5, speaker="A"),
        Part(None, 125, audio=a, audio_start_frame=1000, speaker="A"),
        Part(None, 125, audio=CLIPS / STRANGER, audio_start_frame=0, speaker="stranger"),
    ]
    video = compose(parts, folder / "show.mp4", size=(480, 270))
    photo = folder / "a.jpg"
    cv2.imwrite(str(photo), _frame(PRESENTER, 1400))  # a moment the programme does not show
    return {"video": video, "photo": photo, "folder": folder}


@pytest.fixture(scope="module")
def pipeline_for(show):
    from syncnet_fcn.timeline import PersonSpec, TimelinePipeline

    def make():
        return TimelinePipeline(window_s=WINDOW_S, people=[PersonSpec.parse(f"A={show['photo']}")])

    return make


@pytest.fixture(scope="module")
def full_run(show, pipeline_for):
    return pipeline_for().run(show["video"], checkpoint=show["folder"] / "full.jsonl")


def _speaker_during(timeline, start: float, end: float) -> dict[str, float]:
    """Seconds each speaker label covers within [start, end)."""
    cover: dict[str, float] = {}
    for seg in timeline.voice_segments():
        overlap = min(end, seg["end"]) - max(start, seg["start"])
        if overlap > 0:
            cover[seg["speaker"]] = cover.get(seg["speaker"], 0.0) + overlap
    return cover


# -- identities on real clips ------------------------------------------------------------------------------


def test_face_gallery_tells_people_apart_and_finds_them_again():
    from detectors import create_detector
    from syncnet_fcn.crops import crop_face
    from syncnet_fcn.identity import FaceGallery, describe_crops

    detector = create_detector("mediapipe")

    def face(name, index):
        image = _frame(name, index)
        box = max(detector.detect(image), key=lambda d: d.box[2] - d.box[0]).box
        return describe_crops(crop_face(image, box)[None])

    gallery = FaceGallery()
    gallery.enrol("A", face(PRESENTER, 1400))
    assert gallery.assign(face(PRESENTER, 100))[0] == "A"
    first = gallery.assign(face(GUEST, 50))[0]
    assert first == "P1"
    assert gallery.assign(face(GUEST, 450))[0] == "P1"  # the same unknown face later: same cluster
    assert gallery.assign(face("vretalk_face4.mp4", 20))[0] == "P2"  # another person: a new one
    restored = FaceGallery.from_state(gallery.to_state())
    probe = face(GUEST, 300)
    assert restored.assign(probe) == gallery.assign(probe)


# -- the whole timeline ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_people_keep_their_labels_on_and_off_screen(full_run):
    t = full_run
    assert _max_label(_speaker_during(t, 1, 14)) == "A"
    guest_cover = _speaker_during(t, 16, 22)
    guest = _max_label(guest_cover)
    assert guest.startswith("P"), guest_cover  # not enrolled: an unknown cluster, not A
    assert _max_label(_speaker_during(t, 24, 28)) == "A"  # A returns after the guest
    assert _max_label(_speaker_during(t, 29, 33)) == "A"  # A's voice, nobody on screen
    assert _max_label(_speaker_during(t, 34, 38)) == "unknown"  # a voice nobody enrolled
    labels = {track["label"] for track in t.tracks}
    assert "A" in labels and guest in labels and not any(tr["start"] >= 30 for tr in t.tracks)


@pytest.mark.slow
def test_offset_jump_is_found_within_one_window(full_run):
    near = [j for j in full_run.jumps if abs(j["time_s"] - JUMP_AT_S) <= WINDOW_S]
    assert near, full_run.jumps
    # delaying the audio by 5 frames moves the reading by -5 (±1 frame)
    assert abs((near[0]["to_frames"] - near[0]["from_frames"]) + 5) <= 1


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(show, pipeline_for, full_run):
    checkpoint = show["folder"] / "resumed.jsonl"
    windows_done = []
    partial = pipeline_for().run(show["video"], checkpoint=checkpoint,
                                 should_stop=lambda: windows_done.append(1) or len(windows_done) >= 3)
    assert not partial.complete and len(partial.windows) == 3
    resumed = pipeline_for().run(show["video"], checkpoint=checkpoint, resume=True)
    assert resumed.timings["windows_run"] == len(full_run.windows) - 3
    for key in ("segments", "windows", "tracks", "people", "jumps"):
        assert getattr(resumed, key) == getattr(full_run, key), key


@pytest.mark.slow
def test_each_format_reads_back(full_run, tmp_path):
    from syncnet_fcn.writers import get_writer

    segments = full_run.segments
    srt = get_writer("srt").render(full_run)
    cues = re.findall(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)", srt)
    assert len(cues) == len(segments)
    for cue, seg in zip(cues, segments):
        start = int(cue[0]) * 3600 + int(cue[1]) * 60 + int(cue[2]) + int(cue[3]) / 1000
        assert abs(start - seg["start"]) < 1e-3
        assert cue[8] == (f"{seg['speaker']} · {seg['type']}" if seg["speaker"] else seg["type"])
    vtt = get_writer("vtt").render(full_run)
    assert vtt.startswith("WEBVTT\n") and len(re.findall(r"\d\d:\d\d:\d\d\.\d{3} --> ", vtt)) == len(segments)
    rows = list(csv.DictReader(io.StringIO(get_writer("csv").render(full_run))))
    assert [(r["speaker"] or None, float(r["start"]), float(r["end"]), r["type"]) for r in rows] == \
        [(s["speaker"], s["start"], s["end"], s["type"]) for s in segments]
    turns = []
    for line in get_writer("rttm").render(full_run).splitlines():
        fields = line.split()
        assert len(fields) == 10 and fields[0] == "SPEAKER" and fields[1] == "show"
        turns.append((fields[7], float(fields[3]), float(fields[3]) + float(fields[4])))
    voiced = full_run.voice_segments()
    assert [(s, round(a, 2), round(b, 2)) for s, a, b in turns] == [(s["speaker"], s["start"], s["end"]) for s in voiced]


# -- bad input ----------------------------------------------------------------------------------------------


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_reference_photos_are_one_line_errors(show, tmp_path, capsys):
    unreadable = tmp_path / "broken.jpg"
    unreadable.write_text("not an image")
    empty = tmp_path / "wall.jpg"
    cv2.imwrite(str(empty), np.full((240, 320, 3), 120, np.uint8))
    two = tmp_path / "two.jpg"
    cv2.imwrite(str(two), _frame("visualvoice_interview.mp4", 10))  # two people side by side
    video = str(show["video"])
    assert "cannot read" in _cli_error(capsys, ["timeline", video, "--quiet", "--person", f"A={unreadable}"])
    assert "no face" in _cli_error(capsys, ["timeline", video, "--quiet", "--person", f"A={empty}"])
    assert "2 faces" in _cli_error(capsys, ["timeline", video, "--quiet", "--person", f"A={two}"])
    assert "no face" in _cli_error(capsys, ["timeline", video, "--quiet", "--person", "A=@00:00:31"])
    assert "only" in _cli_error(capsys, ["timeline", video, "--quiet", "--person", "A=@02:00:00"])
    assert "unknown output format" in _cli_error(capsys, ["timeline", video, "--quiet", "--format", "docx"])
    assert "cannot read the time" in _cli_error(capsys, ["timeline", video, "--quiet", "--person", "A=@noon"])


def test_checkpoint_of_other_settings_is_refused(show, pipeline_for, tmp_path):
    from syncnet_fcn.timeline import TimelinePipeline

    checkpoint = tmp_path / "other.jsonl"
    pipeline_for().run(show["video"], checkpoint=checkpoint, should_stop=lambda: True)
    with pytest.raises(InvalidArgumentError, match="other settings"):
        TimelinePipeline(window_s=7).run(show["video"], checkpoint=checkpoint, resume=True)


# -- the API job ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_api_timeline_job_gives_progress_and_files(show, tmp_path):
    from app import create_app

    client = create_app({"SYNC_UPLOAD_DIR": str(tmp_path), "TESTING": True}).test_client()
    bad = client.post("/api/timeline", data={"video": (open(clip_path("grid_bbaf2n.mpg"), "rb"), "g.mpg"),
                                              "photo:A": (io.BytesIO(b"not an image"), "a.jpg")})
    assert bad.status_code == 400 and "cannot read" in bad.json["error"]["message"]
    no_face = client.post("/api/timeline", data={"video": (open(show["video"], "rb"), "show.mp4"),
                                                  "person": "A=@00:00:31"})
    assert no_face.status_code == 400 and "no face" in no_face.json["error"]["message"]
    response = client.post("/api/timeline", data={
        "video": (open(clip_path("syncnet_example.avi"), "rb"), "example.avi"),
        "photo:A": (open(show["photo"], "rb"), "a.jpg"), "window": "5", "formats": "json,srt"})
    assert response.status_code == 202, response.json
    url, progress = response.json["status_url"], []
    deadline = time.time() + 300
    while time.time() < deadline:
        body = client.get(url).json
        progress.append(body["progress"])
        if body["state"] in ("done", "error"):
            break
        time.sleep(0.2)
    assert body["state"] == "done", body
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert set(body["files"]) == {"example.json", "example.srt", "example.png"}
    srt = client.get(body["files"]["example.srt"]).get_data(as_text=True)
    assert "· talk" in srt
    labels = {seg["speaker"] for seg in body["result"]["segments"]}
    assert labels and "A" not in labels  # the example's speaker is not the enrolled presenter


def _max_label(cover: dict[str, float]) -> str | None:
    return max(cover, key=cover.get) if cover else None


def test_gradio_tab_is_wired_and_refuses_bad_input_readably(show, tmp_path):
    gr = pytest.importorskip("gradio")
    import app_gradio
    from app_gradio_timeline import run_timeline

    assert any(getattr(fn, "api_name", None) == "timeline" for fn in app_gradio.demo.fns.values())
    with pytest.raises(gr.Error, match="Upload a recording"):
        run_timeline(None, "", None, "", 10)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    with pytest.raises(gr.Error) as caught:
        run_timeline(str(show["video"]), "A", [str(broken)], "", 10)
    assert "cannot read reference photo" in str(caught.value.message)


def test_missing_extra_is_named_in_the_error(monkeypatch):
    from syncnet_fcn import identity, voices

    monkeypatch.setattr(identity, "_LOADED", None)
    monkeypatch.setattr(voices, "_ENCODER", None)
    monkeypatch.setitem(sys.modules, "dlib", None)  # an import of it now fails
    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    for load in (identity._models, voices._encoder):
        with pytest.raises(identity.IdentityUnavailableError, match=r"syncnet-fcn\[timeline\]"):
            load()
