"""How much of a guest's part the timeline's engine confirms by lips, and whether the guest's voice is learnt.

The timeline learns a person's voice only from stretches the lips confirm (``VOICE_LEARN_FRAMES``,
gaps shorter than that bridged), and names voiced frames without a speaking face by that voice. A
guest whose lips clear the engine's lone-face ``speaking_threshold`` too briefly never gets a voice,
and their part reads ``unknown``. This script composes tests/test_timeline.py's programme (presenter,
guest from a chosen frame, presenter, presenter's voice over an empty frame, a stranger's voice)
and prints, per face track, its label and seconds of lip-confirmed speech, then the speaker labels
over the guest's part (16-22 s).

    python benchmarks/timeline_guest.py --guest-from 0 250
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "clips"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from programme import Part, compose  # noqa: E402

PRESENTER, STRANGER = CLIPS / "edtalk_pose_source2.mp4", CLIPS / "wav2lipgfpgan_kim_7s_raw.mp4"


def guest_reading(guest: Path, start_frame: int, folder: Path) -> None:
    from syncnet_fcn.media import iter_frames
    from syncnet_fcn.timeline import PersonSpec, TimelinePipeline

    a = PRESENTER
    parts = [Part(a, 250, start_frame=0, speaker="A"), Part(a, 125, start_frame=250, shift_frames=5, speaker="A"),
             Part(guest, 200, start_frame=start_frame, speaker="guest"),
             Part(a, 125, start_frame=375, shift_frames=5, speaker="A"),
             Part(None, 125, audio=a, audio_start_frame=1000, speaker="A"),
             Part(None, 125, audio=STRANGER, audio_start_frame=0, speaker="stranger")]
    video = compose(parts, folder / f"show_{start_frame}.mp4", size=(480, 270))
    photo = folder / "a.jpg"
    cv2.imwrite(str(photo), next(iter_frames(a, start_frame=1400, end_frame=1401))[1])
    pipe = TimelinePipeline(window_s=5.0, people=[PersonSpec.parse(f"A={photo}")])
    print(f"guest {guest.name} from frame {start_frame}: engine {pipe.engine.name}, "
          f"speaking_threshold {pipe.engine.speaking_threshold:.2f}")
    timeline = pipe.run(video)
    for track in timeline.tracks:
        print(f"  track {track['label']:>4} {track['start']:5.1f}-{track['end']:5.1f} s  "
              f"confidence {track['confidence']}  lip-confirmed {track['speaking_s']:.2f} s")
    cover: dict[str, float] = {}
    for seg in timeline.voice_segments():
        overlap = min(22.0, seg["end"]) - max(16.0, seg["start"])
        if overlap > 0:
            cover[seg["speaker"]] = round(cover.get(seg["speaker"], 0.0) + overlap, 2)
    print(f"  labels over 16-22 s (seconds): {cover}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--guest", default="mimictalk_German_20s.mp4")
    parser.add_argument("--guest-from", type=int, nargs="+", default=[0, 250])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for start in args.guest_from:
            guest_reading(CLIPS / args.guest, start, Path(tmp))


if __name__ == "__main__":
    main()
