"""Live monitoring: the alert rule, source checks, the reader through outages and stalls, windows and readings
on a local HLS stream made from a real clip."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from live_stream import LiveServer, Part, render_segments  # noqa: E402

from syncnet_fcn.errors import InvalidArgumentError  # noqa: E402
from syncnet_fcn.live import SourceEvent, SourcePacket, StreamSource, WindowCutter, validate_source  # noqa: E402
from syncnet_fcn.monitor import (  # noqa: E402
    ALERTS_PATH,
    AlertRule,
    Monitor,
    MonitorOptions,
    WindowReading,
    certain_bar,
)


def reading(i: int, offset: int | None, reliable: bool = True, confidence: float = 5.0) -> WindowReading:
    return WindowReading(window=i, stream_start_s=5.0 * i, stream_end_s=5.0 * i + 10, source_start_s=5.0 * i,
                         source_end_s=5.0 * i + 10, wall_time="", faces=1, speaking_face=0 if reliable else None,
                         offset_frames=offset, confidence=confidence, reliable=reliable)


def feed(rule: AlertRule, offsets: list) -> list[tuple[int, dict]]:
    """``offsets``: ints (reliable windows, confidence 5), ("u", offset) for unreliable ones or
    ("c", offset, confidence) for reliable ones of that confidence; [(window, event)]."""
    events = []
    for i, value in enumerate(offsets):
        if isinstance(value, tuple) and value[0] == "c":
            r = reading(i, value[1], confidence=value[2])
        else:
            r = reading(i, value[1], reliable=False) if isinstance(value, tuple) else reading(i, value)
        event = rule.update(r)
        if event is not None:
            events.append((i, event))
    return events


# -- the alert rule on planted readings -------------------------------------------------------------------


def test_alert_after_m_windows_at_least_n_away_then_back_in_sync():
    events = feed(AlertRule(threshold=3, consecutive=2, expect=1), [1, 2, 0, 4, 4, 5, 1, 2, 1])
    assert [(i, e["type"]) for i, e in events] == [(4, "alert"), (7, "back_in_sync")]
    alert = events[0][1]
    assert alert["offset_frames"] == 4 and alert["off_by_frames"] == 3 and alert["since_stream_s"] == 15.0


def test_offsets_below_the_threshold_or_too_short_a_run_do_not_alert():
    rule = AlertRule(threshold=3, consecutive=3)
    assert feed(rule, [2, -2, 2, 5, 5, 0, 5, 5, 1, -6, 6]) == []
    assert rule.in_sync


def test_unreliable_windows_neither_alert_nor_break_a_run():
    rule = AlertRule(threshold=2, consecutive=2)
    assert feed(rule, [("u", 9), ("u", 9), ("u", -7), 0, ("u", 8)]) == []
    events = feed(AlertRule(threshold=2, consecutive=2), [5, ("u", 0), ("u", 0), 5])
    assert [(i, e["type"]) for i, e in events] == [(3, "alert")]


def test_a_new_steady_offset_while_out_of_sync_alerts_again():
    events = feed(AlertRule(threshold=2, consecutive=2), [5, 5, 6, 5, -3, -3, -3, 0, 0])
    assert [(i, e["type"], e["offset_frames"]) for i, e in events] == [
        (1, "alert", 5), (5, "alert", -3), (8, "back_in_sync", 0)]
    assert events[1][1]["previous_offset_frames"] == 5


def test_one_window_above_the_certain_bar_decides_alone_below_it_m_windows_are_needed():
    rule = AlertRule(threshold=2, consecutive=2, expect=0, certain=10.0)
    # a lone off window below the bar: nothing; one at the bar: an alert at once, with its offset
    events = feed(rule, [0, ("c", 6, 9.9), 0, ("c", 5, 10.0)])
    assert [(i, e["type"], e["offset_frames"], e["windows"]) for i, e in events] == [(3, "alert", 5, 1)]
    # out of sync: a confident window of another offset alerts again at once, a confident one within
    # the threshold says "back in sync" at once; a weak one within does not
    events = feed(rule, [("c", 0, 3.0), ("c", -4, 12.0), ("c", -4, 12.0), ("c", 1, 20.0)])
    assert [(i, e["type"], e["offset_frames"]) for i, e in events] == [(1, "alert", -4), (3, "back_in_sync", 1)]
    assert rule.in_sync


def test_the_certain_bar_ignores_unreliable_windows_and_keeps_the_m_window_path():
    rule = AlertRule(threshold=2, consecutive=2, certain=10.0)
    unreliable = reading(0, 9, reliable=False, confidence=50.0)  # e.g. music flagged unreliable: never counts
    assert rule.update(unreliable) is None and rule.in_sync and not rule._run
    # two weak windows still alert as before (M=2), with the median of the run
    events = feed(rule, [("c", 4, 6.0), ("c", 5, 7.0)])
    assert [(i, e["type"], e["windows"]) for i, e in events] == [(1, "alert", 2)]
    # without a bar (None) one window never decides, however confident
    assert feed(AlertRule(threshold=2, consecutive=2), [("c", 7, 1e6), 0, ("c", 7, 1e6)]) == []


class _Engine:
    def __init__(self, name: str, reliable_confidence: float | None):
        self.name = name
        self.calibration = {} if reliable_confidence is None else {"reliable_confidence": reliable_confidence}


def test_the_stored_certain_bar_belongs_to_one_engine_and_one_calibration():
    import json

    from syncnet_fcn.landmark.models import load_calibration

    stored = json.loads(ALERTS_PATH.read_text())["landmark"]
    current = load_calibration()["reliable_confidence"]
    bar = certain_bar(_Engine("landmark", current))
    assert bar == stored["certain_confidence"]
    # the fit put it above every other voice's confidence seen on training footage, and above the
    # engine's own reliability bar
    assert bar > stored["largest_wrong_sound_confidence"] and bar > current
    assert certain_bar(_Engine("landmark", current + 1.0)) is None  # recalibrated engine: another scale
    assert certain_bar(_Engine("fcn", None)) is None  # nothing fitted for it
    assert certain_bar(object()) is None


def test_monitor_options_set_or_switch_off_the_certain_bar(clip):
    source = str(clip("syncnet_example.avi"))
    assert Monitor(source, MonitorOptions(certain=8.5)).rule.certain == 8.5
    assert Monitor(source, MonitorOptions(certain=float("inf"))).rule.certain is None
    with pytest.raises(InvalidArgumentError):
        AlertRule(certain=0.0)


def test_rule_and_window_arguments_are_checked():
    with pytest.raises(InvalidArgumentError):
        AlertRule(threshold=0)
    with pytest.raises(InvalidArgumentError):
        AlertRule(consecutive=0)
    with pytest.raises(InvalidArgumentError):
        WindowCutter(window_s=10, hop_s=20)
    with pytest.raises(InvalidArgumentError):
        WindowCutter(window_s=1, hop_s=1)


# -- which sources may be monitored ----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://cdn.example.org/live/index.m3u8", "rtmp://10.0.0.5/live/key",
                                 "rtsp://cam.local:554/stream", "srt://127.0.0.1:9000", "HTTP://Example.org/a.ts"])
def test_stream_urls_are_accepted(url):
    assert validate_source(url, allow_files=False) == url


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "../shared/clips/syncnet_example.avi",
                                 "data:video/mp4;base64,AAAA", "ftp://example.org/a.mp4", "http:///nohost.m3u8",
                                 "gopher://x", "concat:a.ts|b.ts", "subfile,,start,0,end,0,,:/etc/passwd"])
def test_local_files_and_other_schemes_are_refused_from_the_web(url):
    with pytest.raises(InvalidArgumentError):
        validate_source(url, allow_files=False)


def test_the_cli_may_replay_a_file_but_not_a_missing_one(clip, tmp_path):
    path = str(clip("syncnet_example.avi"))
    assert validate_source(path, allow_files=True) == path
    with pytest.raises(InvalidArgumentError, match="no such file"):
        validate_source(str(tmp_path / "absent.mp4"), allow_files=True)


def test_cli_refuses_a_file_url_with_one_error_line(capsys):
    from syncnet_fcn.cli import main

    assert main(["monitor", "file:///etc/passwd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot monitor")


@pytest.mark.parametrize("extra, words", [([], "cannot open"), (["--window", "4", "--hop", "8"], "hop")])
def test_cli_refuses_a_file_that_is_no_video_and_a_hop_longer_than_the_window(tmp_path, capsys, clip, extra, words):
    from syncnet_fcn.cli import main

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    source = str(junk) if not extra else str(clip("syncnet_example.avi"))
    assert main(["monitor", source, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0]


# -- the reader on a local HLS stream ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_stream(tmp_path_factory):
    from conftest import clip_path

    folder = tmp_path_factory.mktemp("hls")
    clip = clip_path("syncnet_example.avi")
    segments = render_segments([Part(clip, 20.0)], folder)
    return folder, segments


def read_events(source: StreamSource, deadline_s: float, during=None) -> list:
    """Everything ``source`` yields within ``deadline_s`` (the loop is bounded in time and count)."""
    items = []
    timer = threading.Timer(deadline_s, source.stop.set)
    timer.start()
    try:
        for item in source:
            items.append(item)
            if during is not None:
                during(item)
            if len(items) > 20000:
                break
    finally:
        timer.cancel()
        source.stop.set()
    return items


def test_reader_reconnects_after_the_server_stops_and_reports_the_gap(short_stream):
    folder, segments = short_stream
    server = LiveServer(folder, segments).start()
    try:
        assert server.wait_published(1, 5)
        outage = {}

        def take_down_then_up():
            time.sleep(2.5)
            server.stop()
            outage["down"] = time.monotonic()
            time.sleep(4.0)
            server.start()
            outage["up"] = time.monotonic()

        threading.Thread(target=take_down_then_up, daemon=True).start()
        source = StreamSource(server.url, read_timeout=1.5, backoff=0.5, max_backoff=1.0, give_up_after=20)
        items = read_events(source, 14.0)
    finally:
        server.stop()
    events = [i for i in items if isinstance(i, SourceEvent)]
    kinds = [e.kind for e in events]
    assert "disconnected" in kinds and "retrying" in kinds, kinds
    reconnected = [e for e in events if e.kind == "reconnected"]
    assert reconnected, kinds
    # the gap said is the outage as the reader lived it: at least the 4 s the server was down
    assert 4.0 <= reconnected[0].detail["gap_s"] < 12.0
    assert reconnected[0].detail["stream_gap_s"] >= 3.0
    after = [i for i in items[items.index(reconnected[0]):] if isinstance(i, SourcePacket)]
    assert len(after) > 25, "no packets after the reconnect"
    times = [p.time_s for p in items if isinstance(p, SourcePacket) and p.kind == "video"]
    assert times == sorted(times), "stream time must only move forward"


def test_reader_gives_up_on_a_playlist_that_stops_growing(short_stream):
    folder, segments = short_stream
    server = LiveServer(folder, segments).start()
    try:
        assert server.wait_published(2, 8)
        server.freeze()
        source = StreamSource(server.url, read_timeout=1.5, backoff=0.5, max_backoff=1.0, give_up_after=5.0)
        started = time.monotonic()
        items = read_events(source, 30.0)
        took = time.monotonic() - started
    finally:
        server.stop()
    kinds = [i.kind for i in items if isinstance(i, SourceEvent)]
    assert "retrying" in kinds and kinds[-1] == "ended", kinds
    assert "nothing new" in items[-1].detail["reason"]
    assert took < 25.0
    video = [p.time_s for p in items if isinstance(p, SourcePacket) and p.kind == "video"]
    assert len(video) == len(set(video)), "a rejoined playlist's repeated segment must not be read twice"


def test_windows_start_on_keyframes_and_hold_the_window_length(short_stream):
    folder, segments = short_stream
    from syncnet_fcn.live import Connection
    from syncnet_fcn.media import load_audio, probe

    source = StreamSource(str(folder / segments[0][0]).replace(segments[0][0], "all.m3u8"))
    cutter = WindowCutter(window_s=6.0, hop_s=4.0, workdir=folder)
    windows = []
    for item in source:
        if isinstance(item, Connection):
            cutter.reset(item)
        elif isinstance(item, SourcePacket):
            window = cutter.add(item)
            if window is not None:
                info = probe(window.path)
                windows.append((window, info.n_frames, len(load_audio(window.path)) // 640))
                window.path.unlink()
    assert len(windows) == 4  # ends at 6, 10, 14, 18 s of a 20 s stream
    for window, n_frames, audio_frames in windows:
        assert window.end_s - window.start_s >= 6.0 - 1e-6
        assert window.end_s - window.start_s <= 6.0 + 2.0  # at most one 2 s GOP earlier
        assert abs(n_frames - (window.end_s - window.start_s) * 25) <= 1
        assert abs(audio_frames - n_frames) <= 2
    assert len(cutter.packets) < 25 * 9 * 2  # only what the next window needs is kept


# -- the monitor: skipping when behind, readings of a real stream ------------------------------------------


class _SlowPipeline:
    """Stands in for SyncPipeline where only the monitor's pacing is under test."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.calls = 0

    def analyze(self, path):
        from syncnet_fcn.errors import NoFaceError

        self.calls += 1
        assert Path(path).stat().st_size > 0
        time.sleep(self.seconds)
        raise NoFaceError("stand-in")


def test_monitor_skips_and_counts_windows_when_scoring_falls_behind(clip):
    events = []
    pipeline = _SlowPipeline(1.2)
    options = MonitorOptions(window_s=2.0, hop_s=0.5, realtime=True)
    monitor = Monitor(str(clip("syncnet_example.avi")), options, on_event=events.append, pipeline=pipeline)
    timer = threading.Timer(8.0, monitor.stop)
    timer.start()
    monitor.run()
    timer.cancel()
    readings = [e for e in events if e["type"] == "reading"]
    skipped = [e for e in events if e["type"] == "skipped"]
    assert skipped and readings and events[-1]["type"] == "ended"
    assert events[-1]["skipped"] == len(skipped) == skipped[-1]["skipped"]
    windows = {e["window"] for e in readings} | {e["window"] for e in skipped}
    assert len(windows) == len(readings) + len(skipped)  # every window is read or said skipped
    assert max(windows) == len(windows) or max(windows) == len(windows) + 1  # at most the last is in flight
    assert all(e["note"] == "no face" and not e["reliable"] for e in readings)


@pytest.mark.slow
def test_window_readings_on_a_live_hls_stream_follow_a_known_shift(clip, tmp_path):
    """12 s in sync, then the sound 5 frames early: readings on whole windows differ by 5 (±1)."""
    source_clip = clip("syncnet_example.avi")
    segments = render_segments([Part(source_clip, 12.0), Part(source_clip, 12.0, shift_frames=5)], tmp_path)
    first_pts = _first_video_seconds(tmp_path / segments[0][0])
    events = []
    with LiveServer(tmp_path, segments, window=20) as server:
        # every window read, however loaded the machine (the playlist keeps 20 segments for the reader)
        options = MonitorOptions(window_s=6.0, hop_s=3.0, read_timeout=4.0, backoff=0.5, give_up_after=4.0,
                                 expect=0, threshold=3, consecutive=1, skip_when_behind=False)
        monitor = Monitor(server.url, options, on_event=events.append)
        timer = threading.Timer(90.0, monitor.stop)  # bounded whatever happens
        timer.start()
        monitor.run()
        timer.cancel()
    readings = [e for e in events if e["type"] == "reading" and e["reliable"]]
    by_part = {0: [], 1: []}
    for e in readings:
        start, end = e["source_start_s"] - first_pts, e["source_end_s"] - first_pts
        if end <= 12.0 + 0.05:
            by_part[0].append(e["offset_frames"])
        elif start >= 12.0 - 0.05:
            by_part[1].append(e["offset_frames"])
    assert by_part[0] and by_part[1], events
    assert all(abs(b - a - 5) <= 1 for a in by_part[0] for b in by_part[1]), by_part
    assert all(e["latency_s"] >= 0 and e["faces"] == 1 for e in readings)


def _first_video_seconds(segment: Path) -> float:
    import av

    with av.open(str(segment)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None:
                return float(packet.pts * packet.time_base)
    raise AssertionError("no video packet")


# -- the REST API: start, status, Server-Sent Events, stop; what it refuses --------------------------------


class _QuickPipeline:
    """A stand-in engine (the API cycle is under test here, not the reading: see the HLS test above)."""

    def analyze(self, path):
        from syncnet_fcn.errors import NoFaceError

        assert Path(path).stat().st_size > 0
        raise NoFaceError("stand-in")


@pytest.fixture
def monitor_app():
    from conftest import REPO

    sys.path.insert(0, str(REPO))
    from app import create_app

    return create_app({"TESTING": True, "MONITOR_MAX_ACTIVE": 1, "MONITOR_HEARTBEAT_S": 0.5,
                       "MONITOR_PIPELINE_FACTORY": _QuickPipeline})


def sse_events(response, until, limit_s: float) -> list[tuple[str, dict]]:
    """Parse an SSE response until ``until(events)`` or the stream ends (bounded in time)."""
    import json

    events, buffer, deadline = [], "", time.monotonic() + limit_s
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            lines = [line for line in block.splitlines() if ": " in line and not line.startswith(":")]
            fields = dict(line.split(": ", 1) for line in lines)
            if "data" in fields:
                events.append((fields["event"], json.loads(fields["data"])))
        if until(events) or time.monotonic() > deadline:
            break
    return events


def test_api_starts_reports_streams_and_stops_a_monitor(monitor_app, short_stream):
    folder, segments = short_stream
    client = monitor_app.test_client()
    with LiveServer(folder, segments) as server:
        server.wait_published(1, 5)
        created = client.post("/api/monitors", json={"source": server.url, "window_s": 2, "hop_s": 1})
        assert created.status_code == 201, created.json
        body = created.json
        assert body["state"] == "running" and created.headers["Location"].endswith(body["monitor_id"])

        # the limit: one running monitor in this app
        second = client.post("/api/monitors", json={"source": server.url})
        assert second.status_code == 429 and second.json["error"]["code"] == "too_many_monitors"

        stream = client.get(body["events_url"], buffered=False)
        assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
        seen = sse_events(stream, lambda ev: sum(kind == "reading" for kind, _ in ev) >= 2, limit_s=30)
        stream.close()
        readings = [e for kind, e in seen if kind == "reading"]
        assert len(readings) >= 2 and readings[0]["note"] == "no face" and readings[0]["faces"] == 0

        status = client.get(body["status_url"]).json
        assert status["readings"] >= 2 and status["latest"]["type"] == "reading"
        assert client.get("/api/monitors").json["monitors"][0]["monitor_id"] == body["monitor_id"]

        stopped = client.delete(body["status_url"])
        assert stopped.status_code == 200 and stopped.json["state"] in ("stopping", "stopped")
        deadline = time.monotonic() + 20
        while client.get(body["status_url"]).json["state"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get(body["status_url"]).json["state"] == "stopped"
        # a late subscriber gets what was said, ending with "ended", and the stream closes
        replay = sse_events(client.get(body["events_url"] + "?after=0", buffered=False), lambda ev: False, 10)
        assert replay[-1][0] == "ended" and sum(k == "reading" for k, _ in replay) >= 2
        # the slot is free again
        again = client.post("/api/monitors", json={"source": server.url})
        assert again.status_code == 201
        client.delete(again.json["status_url"])


@pytest.mark.parametrize("body, code", [
    ({"source": "file:///etc/passwd"}, 400), ({"source": "/etc/passwd"}, 400),
    ({"source": "../shared/clips/syncnet_example.avi"}, 400), ({"source": "ftp://example.org/x"}, 400),
    ({"url": "http://example.org/a.m3u8"}, 400), ({"source": "http://example.org/a.m3u8", "hop_s": 20}, 400),
    ({"source": "http://example.org/a.m3u8", "webhook": "file:///tmp/x"}, 400),
    ({"source": "http://example.org/a.m3u8", "threshold_frames": "two"}, 400)])
def test_api_refuses_local_files_other_schemes_and_bad_options(monitor_app, body, code):
    client = monitor_app.test_client()
    response = client.post("/api/monitors", json=body)
    assert response.status_code == code and response.json["error"]["code"] == "invalid_argument"
    assert client.get("/api/monitors").json["monitors"] == []  # nothing was started


def test_api_unknown_monitor_is_404(monitor_app):
    client = monitor_app.test_client()
    for response in (client.get("/api/monitors/nope"), client.delete("/api/monitors/nope"),
                     client.get("/api/monitors/nope/events")):
        assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


# -- the Gradio tab ----------------------------------------------------------------------------------------


def test_gradio_tab_charts_windows_then_stops(short_stream, monkeypatch):
    import gradio as gr
    from conftest import REPO

    sys.path.insert(0, str(REPO))
    import gradio_monitor

    with pytest.raises(gr.Error, match="cannot monitor"):
        next(gradio_monitor.watch("file:///etc/passwd", 0, None))
    monkeypatch.setattr(gradio_monitor, "PIPELINE_FACTORY", _QuickPipeline)
    folder, segments = short_stream
    with LiveServer(folder, segments) as server:
        server.wait_published(1, 5)
        updates = gradio_monitor.watch(server.url, 0, None)
        deadline = time.monotonic() + 40
        for status, chart, log, session in updates:
            if "windows" in status or time.monotonic() > deadline:
                break
        assert "faces 0" in status and session in gradio_monitor._running
        gradio_monitor.stop(session)
        last = list(updates)[-1]
    assert last[3] is None and session not in gradio_monitor._running


# -- the command line --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_replays_a_file_one_line_and_one_json_line_per_window(clip, tmp_path, capsys):
    import json

    from syncnet_fcn.cli import main

    out = tmp_path / "readings.jsonl"
    shifted = tmp_path / "shifted.mp4"
    _write_shifted(clip("syncnet_example.avi"), shifted, frames=-5)  # the sound 5 frames early: reads 5 higher
    code = main(["monitor", str(shifted), "--window", "6", "--hop", "6", "--jsonl", str(out),
                 "--expect", "0", "--threshold", "3", "--consecutive", "1"])
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    readings = [e for e in events if e["type"] == "reading"]
    assert len(readings) == 2  # 0-6 s and 6-12 s of a 12.7 s clip
    assert sum(" yes " in line or " no " in line for line in printed) == len(readings)
    assert events[-1]["type"] == "ended" and events[-1]["readings"] == 2
    reliable = [e["offset_frames"] for e in readings if e["reliable"]]
    # the clip reads +3 (official weights) to +4 (landmark, whole clip): +5 on that, ±1 frame either way
    assert reliable and all(abs(o - (3 + 5)) <= 2 for o in reliable), readings
    assert any(e["type"] == "alert" for e in events) and any("OUT OF SYNC" in line for line in printed)


def _write_shifted(source: Path, target: Path, frames: int) -> None:
    """``source`` with its sound moved at sample level (``shift_audio``), written with PyAV."""
    from conftest import write_test_video

    from syncnet_fcn.media import iter_frames, load_audio, shift_audio

    audio = shift_audio(load_audio(source), frames)
    write_test_video(target, (img for _, img in iter_frames(source)), audio=audio)


def test_a_source_without_sound_gives_unreliable_readings_and_no_alert(clip, tmp_path):
    """A stream with no audio track at all: every window says so, none alerts, nothing breaks."""
    segments = render_segments([Part(clip("syncnet_example.avi"), 8.0)], tmp_path, with_audio=False)
    assert segments
    events = []
    options = MonitorOptions(window_s=3.0, hop_s=3.0, threshold=1, consecutive=1)
    Monitor(str(tmp_path / "all.m3u8"), options, on_event=events.append).run()
    readings = [e for e in events if e["type"] == "reading"]
    assert len(readings) == 2 and all(e["note"] == "no audio" and not e["reliable"] for e in readings)
    assert all(e["faces"] is None for e in readings)  # not looked for, rather than "no face"
    assert not [e for e in events if e["type"] == "alert"] and events[-1]["type"] == "ended"


# -- the webhook -------------------------------------------------------------------------------------------


class _SteadyPipeline:
    """Stands in for SyncPipeline: one face, always reliable at ``offset`` (the alert path is under test)."""

    def __init__(self, offset: int):
        self.offset = offset

    def analyze(self, path):
        from types import SimpleNamespace

        sync = SimpleNamespace(offset_frames=self.offset, confidence=7.0, reliable=True, note="")
        track = SimpleNamespace(track_id=0, sync=sync, track=SimpleNamespace(bbox_summary=lambda: {}))
        return {"stand-in": SimpleNamespace(tracks=[track], main=track)}


def test_webhook_receives_each_alert_as_json_and_a_dead_one_is_reported(clip):
    import http.server
    import json

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        events = []
        options = MonitorOptions(window_s=4.0, hop_s=4.0, threshold=2, consecutive=1, webhook=url)
        Monitor(str(clip("syncnet_example.avi")), options, on_event=events.append, pipeline=_SteadyPipeline(6)).run()
    finally:
        server.shutdown()
        server.server_close()
    assert [e["type"] for e in events if e["type"] == "alert"] == ["alert"]
    assert len(received) == 1 and received[0]["type"] == "alert" and received[0]["offset_frames"] == 6
    assert received[0]["source"].endswith("syncnet_example.avi")

    events = []
    options = MonitorOptions(window_s=4.0, hop_s=4.0, threshold=2, consecutive=1, webhook=url)  # now closed
    Monitor(str(clip("syncnet_example.avi")), options, on_event=events.append, pipeline=_SteadyPipeline(6)).run()
    assert any(e["type"] == "webhook_failed" for e in events) and events[-1]["type"] == "ended"
