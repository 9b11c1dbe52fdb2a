"""The timeline against a programme whose truth is known frame by frame, and its cost at length.

Accuracy (``--accuracy``): a programme of real clips (``../shared/clips``, ``../shared/train``) with
known speakers: presenter A (enrolled by a photo from a moment the programme does not show) talks,
guests come and go (unknown people: clustered as P1, P2, …), A returns, A speaks beside a guest's
face, A's voice runs over an empty frame and over a guest's silent still face (off screen), a
stranger's voice nobody enrolled plays over an empty frame, and A's audio is delayed by 5 frames
from a known time on. Reported:

- speaker attribution error over frames where both truth and timeline name a speaker (guests mapped
  to the cluster that covers them most), with missed and false-alarm speech beside it, and a DER;
  truth speech is the part's speaker on frames where the part's own audio is voiced (an energy
  split judged over that part alone), so a speaker's natural pauses do not count as missed speech;
  false alarm is speech the timeline names where that truth has none (bridged pauses included);
  ``der_turns`` scores against turns instead (the part's speaker on every frame, pauses included);
- the share of A's returns (on screen and off) whose majority label is A;
- per-window offsets within ±1 frame of the expected value (the clip's own reading on its clean
  version, minus the injected delay), over windows read as reliable and lying inside one part;
- the injected jump: where it was found against where it happens.

Cost (``--cost``): a single presenter looped to the given minutes at 720p and 1080p, each run in a
fresh process: wall time against real time, peak RSS, and the pipeline's own split of the time.

    python benchmarks/timeline.py --accuracy --cost --minutes 1 5 --json out.json

Figures taken on a shared, loaded 2-core machine vary with the load; ratios are side by side only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLIPS, TRAIN = SHARED / "clips", SHARED / "train"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from programme import Part, compose, truth  # noqa: E402

# DER here is computed by hand (missed + false alarm + confusion over truth speech, no collar):
# pyannote.metrics 4.2 needs numpy>=2, which this project's pins (mediapipe) rule out.

PRESENTER = CLIPS / "edtalk_pose_source2.mp4"
GUESTS = {"G1": CLIPS / "mimictalk_German_20s.mp4", "G2": CLIPS / "pcavs_741400163.mp4",
          "G3": CLIPS / "lrs2_deepavsr_00016.mp4", "G4": TRAIN / "grid_s1" / "bbaf2n.mp4"}
STRANGER = CLIPS / "wav2lipgfpgan_kim_7s_raw.mp4"
JUMP_FRAMES = 5
F = 25  # frames per second


def accuracy_parts() -> tuple[list[Part], float]:
    """The programme and the time the injected delay starts."""
    a, g = PRESENTER, GUESTS
    parts = [
        Part(a, 500, start_frame=0, speaker="A", on_screen="A"),
        Part(g["G1"], 250, speaker="G1", on_screen="G1"),
        Part(a, 250, start_frame=500, speaker="A", on_screen="A"),                    # A returns
        Part(g["G2"], 250, speaker="G2", on_screen="G2"),
        Part(None, 250, audio=a, audio_start_frame=1000, speaker="A"),                 # A off screen, no face
        Part(g["G1"], 250, start_frame=250, speaker="G1", on_screen="G1"),             # G1 returns
        Part(g["G3"], 250, audio=a, audio_start_frame=1250, still=True, speaker="A"),  # A's voice over G3's still face
        Part(a, 250, start_frame=750, beside=g["G2"], speaker="A", on_screen="A"),     # two faces, A speaks
        Part(None, 125, audio=STRANGER, speaker="stranger"),                           # nobody enrolled
        Part(g["G4"], 75, speaker="G4", on_screen="G4"),
        Part(a, 250, start_frame=1000, speaker="A", on_screen="A"),
        Part(a, 250, start_frame=1250, shift_frames=JUMP_FRAMES, speaker="A", on_screen="A"),  # the jump
    ]
    jump_at = sum(p.n_frames for p in parts[:-1]) / F
    return parts, jump_at


def voiced_frames(video: Path, parts: list[Part]) -> np.ndarray:
    """Frames whose part's own sound is voiced (energy split judged over each part alone)."""
    from syncnet_fcn.media import load_audio
    from syncnet_fcn.sound_activity import energy_kinds

    out, start = [], 0
    for part in parts:
        audio = load_audio(video, start_frame=start, end_frame=start + part.n_frames)
        out.append(energy_kinds(audio, part.n_frames) == "talk")
        start += part.n_frames
    return np.concatenate(out)


def clean_offsets(parts: list[Part]) -> dict[str, int]:
    """Each on-screen clip's own reading, unshifted (the expected per-window offset before a delay)."""
    from syncnet_fcn.pipeline import SyncPipeline

    pipe = SyncPipeline(engine="landmark")
    out = {}
    for part in parts:
        if part.video is not None and part.audio == "own" and str(part.video) not in out:
            out[str(part.video)] = pipe.run(part.video).offset_frames
    return out


def frame_labels(timeline, n: int) -> list:
    labels = [None] * n
    for seg in timeline.voice_segments():
        for i in range(int(round(seg["start"] * F)), min(n, int(round(seg["end"] * F)))):
            labels[i] = seg["speaker"]
    return labels


def score_accuracy(timeline, parts: list[Part], voiced: np.ndarray, clean: dict, jump_at: float) -> dict:
    speakers, _ = truth(parts)
    n = len(speakers)
    said = frame_labels(timeline, n)
    speech = np.array([s is not None for s in speakers]) & voiced[:n]
    # guests (and the stranger) map to the label covering them most; A is enrolled and must be "A"
    mapping = {"A": "A"}
    for who in {s for s in speakers if s not in (None, "A")}:
        counts: dict = {}
        for i in np.flatnonzero(speech & np.array([s == who for s in speakers])):
            counts[said[i]] = counts.get(said[i], 0) + 1
        counts.pop(None, None)
        mapping[who] = max(counts, key=counts.get) if counts else None
    if mapping.get("stranger") not in ("unknown", None):
        mapping["stranger"] = "unknown"  # a voice nobody enrolled must read as unknown, nothing else
    said_any = np.array([s is not None for s in said])
    both = speech & said_any
    confusion = sum(1 for i in np.flatnonzero(both) if said[i] != mapping.get(speakers[i]))
    missed = int(np.sum(speech & ~said_any))
    false_alarm = int(np.sum(~speech & said_any))
    total = int(speech.sum())

    # A's returns: every A part after the first, majority label over its voiced frames
    returns, kept, start = [], 0, 0
    for k, part in enumerate(parts):
        span = range(start, start + part.n_frames)
        start += part.n_frames
        if part.speaker != "A" or k == 0:
            continue
        labels = [said[i] for i in span if speech[i] and said[i] is not None]
        majority = max(set(labels), key=labels.count) if labels else None
        returns.append({"at_s": span[0] / F, "on_screen": part.on_screen == "A", "label": majority})
        kept += majority == "A"

    # per-window offsets: windows inside one on-screen part with its own audio
    bounds, start = [], 0
    for part in parts:
        bounds.append((start / F, (start + part.n_frames) / F, part))
        start += part.n_frames
    judged = within = 0
    for w in timeline.windows:
        if not w["reliable"] or w["offset_frames"] is None:
            continue
        inside = [p for a, b, p in bounds if a <= w["start"] and w["end"] <= b]
        if not inside or inside[0].audio != "own" or inside[0].video is None:
            continue
        expected = clean[str(inside[0].video)] - inside[0].shift_frames
        judged += 1
        within += abs(w["offset_frames"] - expected) <= 1
    # against turn-level truth (the part's speaker on every frame, pauses included): what a
    # diarisation reference drawn as turns would score
    turns = np.array([s is not None for s in speakers])
    turn_confusion = sum(1 for i in np.flatnonzero(turns & said_any) if said[i] != mapping.get(speakers[i]))
    turn_missed, turn_fa = int(np.sum(turns & ~said_any)), int(np.sum(~turns & said_any))
    near = [j for j in timeline.jumps if j["to_frames"] - j["from_frames"] <= -JUMP_FRAMES + 1]
    found = min(near, key=lambda j: abs(j["time_s"] - jump_at)) if near else None
    return {
        "programme_s": n / F,
        "speech_s": total / F,
        "attribution_error": round(confusion / max(int(both.sum()), 1), 4),
        "missed_speech": round(missed / max(total, 1), 4),
        "false_alarm_speech": round(false_alarm / max(total, 1), 4),
        "der": round((confusion + missed + false_alarm) / max(total, 1), 4),
        "der_turns": round((turn_confusion + turn_missed + turn_fa) / max(int(turns.sum()), 1), 4),
        "label_mapping": mapping,
        "returns_kept": f"{kept}/{len(returns)}",
        "returns": returns,
        "windows_within_1": f"{within}/{judged}",
        "windows_within_1_share": round(within / max(judged, 1), 4),
        "jump_true_s": jump_at,
        "jump_found": found,
        "jump_error_s": None if found is None else round(abs(found["time_s"] - jump_at), 2),
        "jumps": timeline.jumps,
    }


def run_accuracy(workdir: Path, from_json: Path | None = None) -> dict:
    import cv2

    from syncnet_fcn.media import iter_frames
    from syncnet_fcn.timeline import PersonSpec, TimelinePipeline

    parts, jump_at = accuracy_parts()
    video = workdir / "accuracy_programme.mp4"
    if not video.exists():
        compose(parts, video, size=(1280, 720))
    photo = workdir / "presenter.jpg"
    cv2.imwrite(str(photo), next(iter_frames(PRESENTER, start_frame=1400, end_frame=1401))[1])
    started = time.perf_counter()
    if from_json is not None:  # score a run already made (its JSON) again
        from syncnet_fcn.timeline_result import Timeline

        timeline = Timeline(**json.loads(from_json.read_text()))
    else:
        timeline = TimelinePipeline(people=[PersonSpec.parse(f"A={photo}")]).run(video)
    wall = time.perf_counter() - started
    from syncnet_fcn.writers import get_writer

    if from_json is None:
        get_writer("json").write(timeline, workdir / "accuracy_timeline.json")
    result = score_accuracy(timeline, parts, voiced_frames(video, parts), clean_offsets(parts), jump_at)
    result.update(wall_s=round(wall, 1), timings={k: round(v, 1) for k, v in timeline.timings.items()})
    return result


# -- cost at length ------------------------------------------------------------------------------------------


def looped_presenter(minutes: float, height: int, workdir: Path) -> Path:
    out = workdir / f"presenter_{minutes:g}min_{height}p.mp4"
    if not out.exists():
        n = int(minutes * 60 * F)
        compose([Part(PRESENTER, n, start_frame=0, speaker="A")], out, size=(height * 16 // 9, height), crf=28)
    return out


def child(video: str) -> None:
    """Run one timeline in this (fresh) process and print its figures as JSON."""
    from syncnet_fcn.timeline import TimelinePipeline

    started = time.perf_counter()
    timeline = TimelinePipeline().run(video)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"video_s": timeline.duration_s, "wall_s": round(wall, 1),
                      "x_real_time": round(timeline.duration_s / wall, 2), "peak_rss_mb": round(peak_mb),
                      "timings": {k: round(v, 1) for k, v in timeline.timings.items()}}))


def run_cost(minutes: list[float], heights: list[int], workdir: Path) -> list[dict]:
    rows = []
    for height in heights:
        for m in minutes:
            video = looped_presenter(m, height, workdir)
            out = subprocess.run([sys.executable, __file__, "--child", str(video)], capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"minutes": m, "height": height, "error": out.stderr[-500:]})
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(minutes=m, height=height)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5])
    parser.add_argument("--heights", type=int, nargs="+", default=[720, 1080])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--score-json", type=Path, default=None,
                        help="with --accuracy: score this timeline JSON of the programme instead of running")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="timeline_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = {}
    if args.accuracy:
        report["accuracy"] = run_accuracy(workdir, args.score_json)
        print(json.dumps(report["accuracy"], indent=2), flush=True)
    if args.cost:
        report["cost"] = run_cost(args.minutes, args.heights, workdir)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
