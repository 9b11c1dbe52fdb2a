"""``syncnet-fcn monitor SOURCE``: watch a live stream (or replay a file) and alert when the sound slips."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InvalidArgumentError
from ..monitor import DEFAULT_CONSECUTIVE, DEFAULT_THRESHOLD_FRAMES
from .common import add_engine_argument, add_weights_argument


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "monitor", help="watch a live stream (HLS, RTMP, RTSP, SRT, HTTP) and alert when audio and lips drift apart",
        description="Reads a rolling window of the stream every hop, measures the speaking face's offset and "
                    "prints one line per window; alerts when it stays away from --expect.")
    p.add_argument("source", help="stream URL (http(s)://…m3u8, rtmp://, rtsp://, srt://) or a video file")
    p.add_argument("--window", type=float, default=10.0, help="seconds per reading (default 10)")
    p.add_argument("--hop", type=float, default=5.0, help="seconds between readings (default 5)")
    p.add_argument("--expect", type=int, default=0, help="the offset in frames the stream should read (default 0)")
    p.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD_FRAMES,
                   help="alert when the offset is this many frames or more from --expect "
                        f"(default {DEFAULT_THRESHOLD_FRAMES})")
    p.add_argument("--consecutive", type=int, default=DEFAULT_CONSECUTIVE,
                   help=f"… for this many reliable windows in a row (default {DEFAULT_CONSECUTIVE})")
    p.add_argument("--certain", type=_certain, default=None, metavar="CONFIDENCE",
                   help="one reliable window at this confidence or more decides alone; 'off': always "
                        "--consecutive windows (default: the engine's bar fitted on training footage, "
                        "syncnet_fcn/data/monitor_alerts.json; none for an engine without one)")
    p.add_argument("--jsonl", help="also append every reading and event to this file, one JSON object a line")
    p.add_argument("--webhook", help="POST each alert and 'back in sync' as JSON to this http(s) URL")
    p.add_argument("--realtime", action="store_true", help="read a file at its own pace, as if it were live")
    add_engine_argument(p, choices=("auto", "syncnet", "fcn", "landmark"))
    add_weights_argument(p)
    p.add_argument("--max-offset", type=int, default=15, help="search range in frames (default 15)")
    p.add_argument("--read-timeout", type=float, default=10.0,
                   help="seconds without data before the source counts as stalled and is reopened (default 10)")
    p.add_argument("--give-up-after", type=float, default=300.0,
                   help="stop when nothing new has arrived for this many seconds (default 300)")
    p.set_defaults(func=cmd_monitor)


def _certain(text: str) -> float:
    import argparse

    if text.strip().lower() == "off":
        return float("inf")
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a confidence or 'off', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the certain confidence must be positive, got {text!r}")
    return value


def cmd_monitor(args) -> int:
    from ..live import is_network, validate_source
    from ..media import probe
    from ..monitor import Monitor, MonitorOptions

    source = validate_source(args.source, allow_files=True)
    if not is_network(source):
        probe(source)  # a file that is no video is refused now (exit 2), not after the engine has loaded
    options = MonitorOptions(window_s=args.window, hop_s=args.hop, engine=args.engine, weights=args.weights,
                             max_offset=args.max_offset, threshold=args.threshold, consecutive=args.consecutive,
                             certain=args.certain, expect=args.expect, realtime=args.realtime,
                             read_timeout=args.read_timeout,
                             give_up_after=args.give_up_after, webhook=args.webhook)
    jsonl = None
    if args.jsonl:
        path = Path(args.jsonl)
        if path.resolve() == Path(source).resolve():
            raise InvalidArgumentError("--jsonl would overwrite the source")
        try:
            jsonl = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise InvalidArgumentError(f"cannot write {path}: {exc.strerror}") from None

    def on_event(event: dict) -> None:
        line = format_event(event)
        if line:
            print(line, flush=True)
        if jsonl is not None:
            jsonl.write(json.dumps(event) + "\n")
            jsonl.flush()

    monitor = Monitor(source, options, on_event=on_event)
    print(HEADER, flush=True)
    try:
        monitor.run()
    except KeyboardInterrupt:
        monitor.stop()
        print(f"stopped: {monitor.readings} windows read, {monitor.skipped} skipped, {monitor.alerts} alerts",
              file=sys.stderr)
    finally:
        if jsonl is not None:
            jsonl.close()
    return 0


HEADER = f"{'stream time':>17s}  {'UTC':12s}  faces  speaker  offset  conf   reliable  latency"


def format_event(event: dict) -> str:
    kind = event.get("type")
    if kind == "reading":
        span = f"{_clock(event['stream_start_s'])}-{_clock(event['stream_end_s'])}"
        offset = "-" if event["offset_frames"] is None else f"{event['offset_frames']:+d}"
        conf = "-" if event["confidence"] is None else f"{event['confidence']:.2f}"
        speaker = "-" if event["speaking_face"] is None else str(event["speaking_face"])
        faces = "-" if event["faces"] is None else str(event["faces"])
        note = f"  {event['note']}" if event.get("note") else ""
        return (f"{span:>17s}  {event['wall_time'][11:23]}  {faces:>5s}  {speaker:>7s}  {offset:>6s}  "
                f"{conf:>5s}  {'yes' if event['reliable'] else 'no ':8s}  {event['latency_s']:5.1f} s{note}")
    if kind in ("alert", "back_in_sync"):
        return f"*** {event['message']} (since stream {_clock(event['since_stream_s'])})"
    if kind == "skipped":
        return f"--- skipped window {_clock(event['stream_start_s'])}-{_clock(event['stream_end_s'])}: " \
               f"scoring is behind ({event['skipped']} skipped so far)"
    if kind == "reconnected":
        stream_gap = "" if event.get("stream_gap_s") is None else f", {event['stream_gap_s']:.1f} s of stream missed"
        return f"--- reconnected after {event['gap_s']:.1f} s{stream_gap}"
    if kind in ("disconnected", "retrying", "discontinuity", "window_error", "webhook_failed", "ended"):
        detail = ", ".join(f"{k}={v}" for k, v in event.items() if k != "type")
        return f"--- {kind}: {detail}"
    return ""


def _clock(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours)}:{int(minutes):02d}:{secs:04.1f}" if hours else f"{int(minutes):02d}:{secs:04.1f}"
