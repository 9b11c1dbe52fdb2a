"""Live monitoring, measured on a local HLS stream (127.0.0.1) made from real clips of ../shared/clips.

    python benchmarks/monitor.py shifts   [--part-seconds 60]   # in sync, +5, -3, back: alert delay and offset
    python benchmarks/monitor.py outage   [--seconds 90]        # the server stops for 20 s mid-stream
    python benchmarks/monitor.py stall                          # the playlist stops growing
    python benchmarks/monitor.py kinds                          # no audio, music only, two faces (720p)
    python benchmarks/monitor.py insync   [--minutes 30]        # talk, music and silence in sync: false alerts,
                                                                # offset spread per window, RSS over time
    nice -n 10 python benchmarks/monitor.py insync --minutes 60 --events FILE
                                                                # rss_mb: at minute 5 and at the end, per-minute
                                                                # highest sample, peak (VmHWM) of the monitor
    python benchmarks/monitor.py keepup   [--seconds 120]       # live 720p: frame-to-reading latency, skips

Shifts follow the SyncNet convention (+5: the sound 5 frames early, the reading 5 higher than the clip's own);
each clip's own reading is taken with ``detect`` on the clip file first. Every scenario prints its figures
and, with ``--json FILE``, writes them; ``--events FILE`` keeps every event as a JSON line as it comes
(readings with the RSS at that moment), for replaying other alert rules (``replay_rule``). ``insync`` replays the rendered stream as fast as it can be read
(its HLS playlist as a file), so a 30-minute programme needs no 30 minutes of waiting; the others are live.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from live_stream import LiveServer, Part, render_segments  # noqa: E402

from syncnet_fcn.monitor import AlertRule, Monitor, MonitorOptions  # noqa: E402

CLIPS = Path(os.environ.get("SYNCNET_FCN_SHARED", HERE.parent.parent / "shared")) / "clips"
VOICE_KINDS = CLIPS.parent / "voice_kinds"
TALK = CLIPS / "syncnet_example.avi"
TWO_FACES = CLIPS / "visualvoice_interview.mp4"
MUSIC = VOICE_KINDS / "YuE__pop.00001.Instrumental.mp3"
#: (N frames, M windows, with the engine's "certain" bar or not) whose false alerts and delays are
#: reported beside the defaults, replayed on the same readings
CANDIDATES = [(2, 1, False), (2, 2, False), (2, 2, True), (3, 1, False), (3, 2, False), (3, 2, True), (3, 3, False)]


def candidate_name(n: int, m: int, certain: bool) -> str:
    return f"N={n},M={m}" + (",certain" if certain else "")


def own_offset(clip: Path) -> int:
    """What ``detect`` reads on the clip file: the stream's 'in sync'."""
    from syncnet_fcn.pipeline import SyncPipeline

    return int(SyncPipeline(engine="auto").run(clip).offset_frames)


def first_video_seconds(segment: Path) -> float:
    import av

    with av.open(str(segment)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.pts is not None:
                return float(packet.pts * packet.time_base)
    raise RuntimeError(f"no video in {segment}")


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (``VmRSS``) or its peak so far (``VmHWM``), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Start VmHWM afresh at the current RSS (Linux: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


class Recorder:
    """Collects a monitor's events with the programme time of each window and the RSS at each reading."""

    def __init__(self, zero_s: float, echo: bool = True, log: str | None = None):
        self.zero_s = zero_s
        self.events: list[dict] = []
        self.echo = echo
        self.started = time.monotonic()
        # every event as one JSON line, as it comes: a long run cut short still leaves its readings
        self.log = open(log, "w") if log else None

    def __call__(self, event: dict) -> None:
        event = dict(event)
        event["at_s"] = round(time.monotonic() - self.started, 2)
        if "source_start_s" in event:
            event["programme_start_s"] = round(event["source_start_s"] - self.zero_s, 2)
            event["programme_end_s"] = round(event["source_end_s"] - self.zero_s, 2)
        if event["type"] == "reading":
            event["rss_mb"] = round(rss_mb(), 1)
            event["peak_rss_mb"] = round(rss_mb("VmHWM"), 1)
            event.pop("tracks", None)
        self.events.append(event)
        if self.log is not None:
            self.log.write(json.dumps(event) + "\n")
            self.log.flush()
        if self.echo:
            keys = ("type", "programme_start_s", "programme_end_s", "offset_frames", "confidence", "reliable",
                    "latency_s", "score_s", "message", "gap_s", "stream_gap_s", "reason", "skipped")
            print(" ".join(f"{k}={event[k]}" for k in keys if k in event), flush=True)

    def readings(self) -> list[dict]:
        return [e for e in self.events if e["type"] == "reading"]

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]


def run_live(parts: list[Part], options: MonitorOptions, *, size=(224, 224), speed: float = 1.0,
             during=None, limit_s: float | None = None, with_audio: bool = True) -> tuple[Recorder, LiveServer]:
    """Render ``parts``, serve them live, monitor until the stream has ended (bounded in time)."""
    folder = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    segments = render_segments(parts, folder, size=size, with_audio=with_audio)
    reset_peak_rss()  # the peak from here on is the monitor's, not the renderer's
    recorder = Recorder(first_video_seconds(folder / segments[0][0]), log=EVENTS_LOG.get("path"))
    server = LiveServer(folder, segments, speed=speed).start()
    server.wait_published(1, 10)
    monitor = Monitor(server.url, options, on_event=recorder)
    recorder.monitor = monitor
    total = sum(d for _, d in segments) / speed
    limit = limit_s or total + 120
    stopper = threading.Timer(limit, monitor.stop)
    stopper.start()
    if during is not None:
        threading.Thread(target=during, args=(server, recorder), daemon=True).start()
    try:
        monitor.run()
    finally:
        stopper.cancel()
        server.stop()
    return recorder, server


def wait_for_reading(recorder: Recorder, server: LiveServer, limit_s: float = 300.0) -> None:
    deadline = time.monotonic() + limit_s
    while not recorder.readings() and time.monotonic() < deadline:
        time.sleep(0.2)


def latency_summary(readings: list[dict]) -> dict:
    if not readings:
        return {}
    newest = sorted(e["latency_s"] for e in readings)
    oldest = sorted(e["oldest_frame_latency_s"] for e in readings)
    score = sorted(e["score_s"] for e in readings)
    return {"newest_frame_to_reading_s": {"median": statistics.median(newest), "max": newest[-1]},
            "oldest_frame_to_reading_s": {"median": statistics.median(oldest), "max": oldest[-1]},
            "score_s": {"median": statistics.median(score), "max": score[-1]}}


def replay_rule(readings: list[dict], threshold: int, consecutive: int, expect: int,
                certain: float | None = None) -> list[dict]:
    """The alerts a rule would give on recorded readings (to compare candidate defaults on one run)."""
    from syncnet_fcn.monitor import WindowReading

    rule = AlertRule(threshold, consecutive, expect, certain)
    fields = WindowReading.__dataclass_fields__
    out = []
    for e in readings:
        event = rule.update(WindowReading(**{k: v for k, v in e.items() if k in fields}))
        if event is not None:
            event["programme_end_s"] = e["programme_end_s"]
            out.append(event)
    return out


def judge_changes(changes: list[tuple[float, int]], alerts: list[dict], hop_s: float) -> list[dict]:
    """For each (programme time, expected offset): the first alert after it with that offset (±1)."""
    rows = []
    for k, (at, expected) in enumerate(changes):
        until = changes[k + 1][0] if k + 1 < len(changes) else float("inf")
        hit = next((a for a in alerts if at <= a["programme_end_s"] < until + 2 * hop_s
                    and abs(a["offset_frames"] - expected) <= 1), None)
        rows.append({"change_at_s": at, "expected_offset": expected,
                     "alert_offset": None if hit is None else hit["offset_frames"],
                     "alert_type": None if hit is None else hit["type"],
                     "delay_s": None if hit is None else round(hit["programme_end_s"] - at, 2),
                     "within_two_hops": hit is not None and hit["programme_end_s"] - at <= 2 * hop_s + 1e-6})
    return rows


# -- scenarios -------------------------------------------------------------------------------------------


def scenario_shifts(args) -> dict:
    own = own_offset(TALK)
    p = args.part_seconds
    shifts = [0, 5, -3, 0]
    parts = [Part(TALK, p, shift_frames=s) for s in shifts]
    options = MonitorOptions(window_s=args.window, hop_s=args.hop, expect=own, give_up_after=15.0)
    recorder, _ = run_live(parts, options)
    readings = recorder.readings()
    alerts = [e for e in recorder.events if e["type"] in ("alert", "back_in_sync")]
    changes = [(k * p, own + s) for k, s in enumerate(shifts)][1:]
    result = {"own_offset": own, "part_seconds": p, "window_s": args.window, "hop_s": args.hop,
              "defaults": {"threshold": options.threshold, "consecutive": options.consecutive,
                           "certain": recorder.monitor.rule.certain},
              "changes": judge_changes(changes, alerts, args.hop),
              "alerts": [{k: a.get(k) for k in ("type", "offset_frames", "programme_end_s")} for a in alerts],
              "readings": len(readings), "reliable": sum(e["reliable"] for e in readings),
              "skipped": len(recorder.of("skipped")), "latency": latency_summary(readings),
              "candidates": {}}
    bar = recorder.monitor.rule.certain
    for n, m, certain in CANDIDATES:
        if certain and bar is None:
            continue
        replayed = replay_rule(readings, n, m, own, bar if certain else None)
        result["candidates"][candidate_name(n, m, certain)] = judge_changes(changes, replayed, args.hop)
    return result


def scenario_outage(args) -> dict:
    down_for = 20.0
    went_down = {}

    def outage(server: LiveServer, recorder: Recorder) -> None:
        wait_for_reading(recorder, server)  # the monitor is reading: now take the server away
        went_down["programme_s"] = server.stream_time()
        server.stop()
        time.sleep(down_for)
        server.start()

    options = MonitorOptions(window_s=args.window, hop_s=args.hop, expect=own_offset(TALK), read_timeout=5.0,
                             give_up_after=30.0)
    recorder, _ = run_live([Part(TALK, args.seconds)], options, during=outage)
    readings = recorder.readings()
    down_at = went_down.get("programme_s", float("inf"))
    return {"server_down_s": down_for, "down_at_programme_s": round(down_at, 1),
            "reconnected": recorder.of("reconnected"),
            "disconnected": len(recorder.of("disconnected")), "retries": len(recorder.of("retrying")),
            "readings": len(readings), "readings_after_outage": sum(e["programme_start_s"] > down_at + down_for
                                                                     for e in readings),
            "alerts": len(recorder.of("alert")), "ended": recorder.of("ended")}


def scenario_stall(args) -> dict:
    frozen = {}

    def stall(server: LiveServer, recorder: Recorder) -> None:
        wait_for_reading(recorder, server)
        frozen["programme_s"] = round(server.stream_time(), 1)
        server.freeze()

    options = MonitorOptions(window_s=args.window, hop_s=args.hop, expect=own_offset(TALK), read_timeout=5.0,
                             give_up_after=30.0)
    started = time.monotonic()
    recorder, _ = run_live([Part(TALK, 60)], options, during=stall)
    return {"frozen_at_programme_s": frozen.get("programme_s"), "retries": len(recorder.of("retrying")),
            "ended": recorder.of("ended"),
            "readings": len(recorder.readings()), "took_s": round(time.monotonic() - started, 1)}


def scenario_kinds(args) -> dict:
    out = {}
    cases = {"no_audio_track": [Part(TALK, args.seconds)], "silence": [Part(TALK, args.seconds, sound=None)],
             "music_only": [Part(TALK, args.seconds, sound=MUSIC)],
             "two_faces_720p": [Part(TWO_FACES, args.seconds)]}
    for name, parts in cases.items():
        size = (1280, 720) if name.endswith("720p") else (224, 224)
        expect = own_offset(TWO_FACES) if name.startswith("two") else own_offset(TALK)
        recorder, _ = run_live(parts, MonitorOptions(window_s=args.window, hop_s=args.hop, expect=expect,
                                                     give_up_after=15.0), size=size,
                               with_audio=name != "no_audio_track")
        readings = recorder.readings()
        out[name] = {"readings": len(readings), "reliable": sum(e["reliable"] for e in readings),
                     "faces": sorted({e["faces"] for e in readings}),
                     "offsets_reliable": [e["offset_frames"] for e in readings if e["reliable"]],
                     "notes": sorted({e["note"][:60] for e in readings if e["note"]}),
                     "alerts": len(recorder.of("alert")), "skipped": len(recorder.of("skipped")),
                     "expect": expect}
    return out


OWN: dict = {}
EVENTS_LOG: dict = {}  # {"path": --events}, for the live scenarios


def insync_programme(minutes: float) -> list[Part]:
    """Talk from several clips, music over a face, and silence, each clip's sound set to read 0."""
    talk = [CLIPS / n for n in ("syncnet_example.avi", "edtalk_pose_source2.mp4", "mimictalk_German_20s.mp4",
                                "pcavs_741400163.mp4", "lrs2_deepavsr_00016.mp4")]
    own = {clip: own_offset(clip) for clip in talk if clip.exists()}
    OWN.update({clip.name: offset for clip, offset in own.items()})
    block = []
    for clip, offset in own.items():
        block.append(Part(clip, 60.0, shift_frames=-offset))  # sound moved so the clip reads 0
    block.append(Part(talk[0], 30.0, sound=MUSIC))
    block.append(Part(talk[0], 30.0, sound=None))
    parts, total = [], 0.0
    while total < minutes * 60:
        for part in block:
            if total >= minutes * 60:
                break
            parts.append(part)
            total += part.seconds
    return parts


def scenario_insync(args) -> dict:
    parts = insync_programme(args.minutes)
    folder = Path(tempfile.mkdtemp(prefix="monitor-insync-"))
    t0 = time.monotonic()
    segments = render_segments(parts, folder)
    render_s = time.monotonic() - t0
    reset_peak_rss()  # the peak from here on is the monitor's, not the renderer's
    recorder = Recorder(first_video_seconds(folder / segments[0][0]), echo=args.verbose, log=args.events)
    options = MonitorOptions(window_s=args.window, hop_s=args.hop, expect=0)
    t0 = time.monotonic()
    monitor = Monitor(str(folder / "all.m3u8"), options, on_event=recorder)
    monitor.run()
    wall = time.monotonic() - t0
    readings = recorder.readings()
    reliable = [e for e in readings if e["reliable"]]
    spread = {}
    for e in reliable:
        spread[abs(e["offset_frames"])] = spread.get(abs(e["offset_frames"]), 0) + 1
    result = {"own_offsets": OWN, "stream_minutes": round(sum(d for _, d in segments) / 60, 1),
              "render_s": round(render_s, 1),
              "wall_s": round(wall, 1), "readings": len(readings), "reliable": len(reliable),
              "abs_offset_count_reliable": dict(sorted(spread.items())),
              "alerts_defaults": len(recorder.of("alert")),
              "certain": monitor.rule.certain,
              "false_alerts_by_candidate": {candidate_name(n, m, c): sum(a["type"] == "alert" for a in replay_rule(
                  readings, n, m, 0, monitor.rule.certain if c else None)) for n, m, c in CANDIDATES
                  if monitor.rule.certain is not None or not c},
              "most_confident_off_reading": max((e["confidence"] for e in reliable if abs(e["offset_frames"]) >= 2),
                                                default=None),
              "rss_mb": rss_summary(readings)}
    return result


def rss_summary(readings: list[dict], from_s: float = 300.0) -> dict:
    """RSS at the first reading from minute 5 on and at the last one, the most it rose above the first
    in between, the peak (VmHWM) at both, and a least-squares trend from minute 5 on."""
    rss = [(e["programme_end_s"], e["rss_mb"], e.get("peak_rss_mb")) for e in readings]
    late = [r for r in rss if r[0] >= from_s]
    if not late:
        return {"readings": len(rss), "note": f"the stream never reached {from_s / 60:g} minutes"}
    (t5, r5, p5), (tn, rn, pn) = late[0], late[-1]
    slope = None
    if len(late) >= 3:  # MB per hour of stream
        import numpy as np

        slope = round(float(np.polyfit([t / 3600 for t, *_ in late], [r for _, r, _ in late], 1)[0]), 1)
    per_minute = {}  # the highest sample of each minute of stream
    for t, r, _ in rss:
        per_minute[int(t // 60)] = max(r, per_minute.get(int(t // 60), r))
    first_minute, last_minute = int(from_s // 60), max(per_minute)
    return {"first": rss[0][1], "at_minute_5": {"minute": round(t5 / 60, 2), "rss": r5, "peak": p5},
            "at_end": {"minute": round(tn / 60, 2), "rss": rn, "peak": pn},
            "end_minus_minute_5": round(rn - r5, 1),
            "max_rise_over_minute_5": round(max(r for _, r, _ in late) - r5, 1),
            "min_from_minute_5": min(r for _, r, _ in late), "max_from_minute_5": max(r for _, r, _ in late),
            "peak_growth_from_minute_5": None if p5 is None or pn is None else round(pn - p5, 1),
            "minute_peak_first_vs_last": {f"minute {first_minute}": per_minute.get(first_minute),
                                          f"minute {last_minute}": per_minute[last_minute],
                                          "change": round(per_minute[last_minute] - per_minute.get(first_minute, 0), 1)},
            "trend_mb_per_hour_from_minute_5": slope, "by_minute": per_minute}


def scenario_keepup(args) -> dict:
    options = MonitorOptions(window_s=args.window, hop_s=args.hop, expect=own_offset(TWO_FACES),
                             give_up_after=15.0)
    recorder, _ = run_live([Part(TWO_FACES, args.seconds)], options, size=(1280, 720))
    readings = recorder.readings()
    return {"size": "1280x720", "stream_s": args.seconds, "readings": len(readings),
            "skipped": len(recorder.of("skipped")), "latency": latency_summary(readings),
            "rss_mb_max": max((e["rss_mb"] for e in readings), default=None),
            "peak_rss_mb_while_monitoring": max((e["peak_rss_mb"] for e in readings), default=None)}


SCENARIOS = {"shifts": scenario_shifts, "outage": scenario_outage, "stall": scenario_stall,
             "kinds": scenario_kinds, "insync": scenario_insync, "keepup": scenario_keepup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--hop", type=float, default=5.0)
    parser.add_argument("--part-seconds", type=float, default=60.0, help="shifts: length of each part")
    parser.add_argument("--seconds", type=float, default=60.0, help="outage/kinds/keepup: stream length")
    parser.add_argument("--minutes", type=float, default=30.0, help="insync: programme length")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--verbose", action="store_true", help="insync: print every event")
    parser.add_argument("--events", help="write every event here as it comes (JSON lines), RSS on each reading")
    args = parser.parse_args()
    EVENTS_LOG["path"] = args.events
    from syncnet_fcn.native_logs import filter_native_stderr

    filter_native_stderr()  # mediapipe's routine C++ log lines, once per window, off the terminal
    result = SCENARIOS[args.scenario](args)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
