"""Who speaks when, on a clip with a known answer.

Two real single-speaker clips are put side by side; the soundtrack is the left face's voice for the
first half and the right face's for the second (each face keeps moving its lips all along). Each
frame then has one true speaker. The same faces are then given a third clip's voice (an off-screen
narrator): no face should be marked. The script runs an engine and prints each track's reading, its
speaking segments, and how many frames the report attributes right (the face marked speaking is the
one heard, and only that one).

    python benchmarks/who_speaks.py --engine landmark          # six pairs of real clips
    python benchmarks/who_speaks.py --left ../shared/clips/pcavs_00104.mp4 --right ../shared/clips/pcavs_00086.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLIPS = REPO.parent / "shared" / "clips"


def make_duo(left: Path, right: Path, target: Path, narrator: Path | None = None) -> tuple[int, int, int]:
    """Write the side-by-side clip; returns ``(frames, first frame of the right face's voice, width of
    the left half)``. With ``narrator`` the soundtrack is that clip's voice instead (repeated or cut
    to length): a voice that belongs to neither face."""
    import av

    from syncnet_fcn.evaluation import foreign_audio
    from syncnet_fcn.media import iter_frames, load_audio

    frames_left = [f for _, f in iter_frames(left)]
    frames_right = [f for _, f in iter_frames(right)]
    n = min(len(frames_left), len(frames_right))
    height = min(frames_left[0].shape[0], frames_right[0].shape[0])
    switch = n // 2
    if narrator is not None:
        voice = foreign_audio(load_audio(narrator), n * 640)
    else:
        voice = np.concatenate([load_audio(left)[: switch * 640], load_audio(right)[switch * 640 : n * 640]])
    with av.open(str(target), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width = frames_left[0].shape[1] + frames_right[0].shape[1]
        video.height = height
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "18"}
        audio = out.add_stream("aac", rate=16000)
        for i in range(n):
            image = np.hstack([frames_left[i][:height], frames_right[i][:height]])
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        sound = av.AudioFrame.from_ndarray(voice.astype(np.int16)[None], format="s16", layout="mono")
        sound.sample_rate = 16000
        sound.pts = 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode())
    return n, switch, frames_left[0].shape[1]


# Voices of neither face: the soundtrack of a third clip (an off-screen narrator, a dub on the wrong scene).
NARRATORS = ["pcavs_741400163.mp4", "lrs2_deepavsr_00004.mp4", "pcavs_00067.mp4"]
# Pairs of real single-speaker clips of several seconds, from two corpora and mixed.
DEFAULT_PAIRS = [
    ("pcavs_00015.mp4", "pcavs_00098.mp4"),
    ("pcavs_00104.mp4", "pcavs_00086.mp4"),
    ("pcavs_681100216.mp4", "pcavs_00104.mp4"),
    ("lrs2_deepavsr_00016.mp4", "lrs2_deepavsr_00019.mp4"),
    ("pcavs_00098.mp4", "lrs2_deepavsr_00024.mp4"),
    ("lrs2_deepavsr_00019.mp4", "pcavs_00015.mp4"),
]


def read_duo(pipe, left: Path, right: Path, narrator: Path | None = None):
    """``(report, frames, first frame of the right face's voice, width of the left half)`` of the
    side-by-side clip (see :func:`make_duo`), written to a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        duo = Path(tmp) / "duo.mp4"
        n, switch, left_width = make_duo(left, right, duo, narrator=narrator)
        return pipe.run(duo), n, switch, left_width


def speaking_mask(result, n: int) -> np.ndarray:
    """``(n,)`` frames on which the track is marked speaking."""
    marked = np.zeros(n, bool)
    for segment in result.speaking_segments():
        marked[segment["start_frame"] : segment["end_frame"] + 1] = True
    return marked


def marked_with_a_narrator(pipe, left: Path, right: Path, narrator: Path) -> float:
    """The share of frames on which some face is marked speaking while the voice is neither's."""
    report, n, _, _ = read_duo(pipe, left, right, narrator)
    marked = np.zeros(n, bool)
    for result in report.tracks:
        marked |= speaking_mask(result, n)
    return round(float(marked.mean()), 3)


def measure_pair(pipe, left: Path, right: Path, narrator: Path | None = None) -> dict:
    """Who speaks when on the side-by-side clip of ``left`` and ``right``, against the truth; with
    ``narrator``, also on the same faces with that clip's voice instead."""
    report, n, switch, left_width = read_duo(pipe, left, right)
    truth = np.where(np.arange(n) < switch, 0, 1)  # 0: left face speaks, 1: right face
    speaking = np.zeros((2, n), bool)
    rows = []
    for result in report.tracks:
        side = 0 if result.track.boxes[:, [0, 2]].mean() < left_width else 1
        speaking[side] |= speaking_mask(result, n)
        rows.append({
            "track": result.track_id, "side": "left" if side == 0 else "right",
            "offset_frames": result.sync.offset_frames, "confidence": round(float(result.sync.confidence), 3),
            "reliable": result.sync.reliable,
            "speaking_s": [(s["start_s"], s["end_s"]) for s in result.speaking_segments()],
        })
    attributed = speaking[truth, np.arange(n)] & ~speaking[1 - truth, np.arange(n)]
    return {
        "clips": [left.name, right.name],
        "frames": n,
        "voice_switches_at_s": switch / 25,
        "tracks": rows,
        "frames_attributed_right": round(float(attributed.mean()), 3),
        # the face that is not heard marked speaking: the costly mistake
        "frames_attributed_wrong": round(float(speaking[1 - truth, np.arange(n)].mean()), 3),
        "frames_with_both_marked": round(float((speaking[0] & speaking[1]).mean()), 3),
        "narrator": None if narrator is None else narrator.name,
        "frames_marked_with_narrator": None if narrator is None else marked_with_a_narrator(pipe, left, right, narrator),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", default="landmark")
    p.add_argument("--weights", default=None)
    p.add_argument("--left", type=Path, default=None, help="one pair instead of the default ones")
    p.add_argument("--right", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="write every pair's figures here")
    args = p.parse_args(argv)

    from syncnet_fcn.pipeline import SyncPipeline

    if (args.left is None) != (args.right is None):
        p.error("give both --left and --right, or neither")
    pairs = [(args.left, args.right)] if args.left else [(CLIPS / a, CLIPS / b) for a, b in DEFAULT_PAIRS]
    pipe = SyncPipeline(engine=args.engine, weights=args.weights)
    measured = []
    for i, (left, right) in enumerate(pairs):
        m = measure_pair(pipe, left, right, narrator=CLIPS / NARRATORS[i % len(NARRATORS)])
        measured.append(m)
        offsets = ", ".join(f"{t['side']} {t['offset_frames']:+d}{'' if t['reliable'] else '?'}" for t in m["tracks"])
        print(f"{left.name:<26} | {right.name:<26} right {100 * m['frames_attributed_right']:5.1f} %  "
              f"wrong {100 * m['frames_attributed_wrong']:5.1f} %  both {100 * m['frames_with_both_marked']:4.1f} %"
              f"  narrator: marked {100 * m['frames_marked_with_narrator']:5.1f} %  ({offsets})", flush=True)
    keys = ("frames_attributed_right", "frames_attributed_wrong", "frames_with_both_marked", "frames_marked_with_narrator")
    mean = {k: round(float(np.mean([m[k] for m in measured])), 3) for k in keys}
    print(f"engine {next(iter(pipe.engines))} · {len(measured)} pairs · mean: right "
          f"{100 * mean['frames_attributed_right']:.1f} %, wrong {100 * mean['frames_attributed_wrong']:.1f} %, "
          f"both {100 * mean['frames_with_both_marked']:.1f} %; with a narrator's voice instead, a face marked on "
          f"{100 * mean['frames_marked_with_narrator']:.1f} % of frames")
    if args.json:
        args.json.write_text(json.dumps({"engine": args.engine, "pairs": measured, "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
