"""Streaming media: the 25 fps timeline, VFR and rotation, audio alignment, error paths."""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from syncnet_fcn.errors import MediaError, NoAudioError, NoVideoStreamError, SyncNetError
from syncnet_fcn.media import iter_frames, iter_timeline, load_audio, probe, rotate_frame, shift_audio

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


# ----------------------------------------------------------------------------------------------------
# helpers: small clips written with PyAV


def write_clip(path, frame_times_s, *, size=(64, 48), rotation_ccw=None, audio=None, audio_rate=48000,
               audio_start_s=0.0):
    """An H.264 mp4 whose frame k is flat grey ``level(k)`` shown at ``frame_times_s[k]`` (any spacing)."""
    width, height = size
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=25)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.codec_context.time_base = Fraction(1, 1000)
    video.time_base = Fraction(1, 1000)
    if rotation_ccw is not None:
        video.set_display_rotation(rotation_ccw)
    sound = container.add_stream("aac", rate=audio_rate, layout="mono") if audio is not None else None
    for k, time_s in enumerate(frame_times_s):
        image = np.full((height, width, 3), level(k), np.uint8)
        if rotation_ccw is not None:
            image[: height // 4, : width // 4] = 255  # a white mark in the stored top-left corner
            image[height // 4:, width // 4:] = 0
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = int(round(time_s * 1000)), video.time_base
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if sound is not None:
        offset = int(round(audio_start_s * audio_rate))
        for start in range(0, len(audio), 1024):
            block = np.ascontiguousarray(audio[None, start:start + 1024], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
            frame.sample_rate, frame.pts = audio_rate, offset + start
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    container.close()
    return path


def level(k: int) -> int:
    return 20 + 5 * k


def nearest_source_frame(frame_times_s, timeline_index):
    rel = np.asarray(frame_times_s) - frame_times_s[0]
    return int(np.argmin(np.abs(rel - timeline_index / 25)))


def expected_audio_samples(path, container_duration_s) -> float:
    """Samples from the first video frame to the end of the audio stream, from stream metadata."""
    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        first_video = float(next(container.decode(video)).pts * video.time_base)
        if sound.duration:
            audio_end = float(((sound.start_time or 0) + sound.duration) * sound.time_base)
        else:  # e.g. PCM in AVI: no stream duration; the audio runs the container's length
            audio_end = container_duration_s
    return (audio_end - first_video) * 16000


# ----------------------------------------------------------------------------------------------------
# real clips: 25, 30, 29.97 fps and variable frame rate


@pytest.mark.parametrize(
    "name, source_fps, vfr",
    [
        ("syncnet_example.avi", 25.0, False),
        ("vretalk_face4.mp4", 30.0, False),
        ("vexpress_AOC.mp4", 29.97, False),
        ("vretalk_face1.mp4", None, True),  # 30 fps timing with dropped frames: 22.13 fps on average
    ],
)
def test_real_clips_map_onto_the_25fps_timeline(clip, manifest, name, source_fps, vfr, tmp_path, monkeypatch):
    path = clip(name)
    entry = next(e for e in manifest if e["file"] == name)
    info = probe(path)

    assert abs(info.n_frames - entry["duration_s"] * 25) <= 1
    assert info.duration_s == pytest.approx(info.n_frames / 25)
    assert (info.width, info.height) == (entry["width"], entry["height"])
    assert info.variable_frame_rate is vfr
    if source_fps is not None:
        assert info.source_fps == pytest.approx(source_fps, rel=1e-3)

    # Decoding writes nothing: no image in the working directory or the temp dir.
    monkeypatch.chdir(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    indices = []
    for index, frame in iter_frames(path, max_side=128):
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert max(frame.shape[:2]) <= 128
        indices.append(index)
    assert indices == list(range(info.n_frames))
    audio = load_audio(path)
    assert os.listdir(scratch) == []
    assert [p for p in os.listdir(tmp_path) if p.lower().endswith(IMAGE_SUFFIXES)] == []

    assert audio.dtype == np.int16 and audio.ndim == 1
    assert abs(audio.size - expected_audio_samples(path, entry["duration_s"])) <= 160  # 10 ms
    assert abs(audio.size - 640 * info.n_frames) <= 2 * 640


def test_seeking_gives_the_same_frames_as_decoding_from_the_start(clip):
    path = clip("edtalk_pose_source2.mp4")
    start, stop = 1000, 1012
    from_start = [f for i, f in iter_frames(path, end_frame=stop) if i >= start]
    sought = list(iter_frames(path, start_frame=start, end_frame=stop))
    assert [i for i, _ in sought] == list(range(start, stop))
    for (_, a), b in zip(sought, from_start):
        np.testing.assert_array_equal(a, b)


def test_audio_window_matches_the_whole_track(clip):
    path = clip("edtalk_pose_source2.mp4")
    whole = load_audio(path).astype(np.int32)
    start, stop = 900, 1000
    window = load_audio(path, start_frame=start, end_frame=stop).astype(np.int32)
    assert window.size == 640 * (stop - start)
    reference = whole[640 * start:640 * stop]
    # The same samples (a seek restarts the decoder and the resampler): not merely correlated.
    assert np.abs(reference).mean() > 100
    assert np.abs(window - reference).mean() < 0.5


def test_audio_is_padded_to_the_requested_end(clip):
    path = clip("syncnet_example.avi")
    info = probe(path)
    audio = load_audio(path, start_frame=info.n_frames - 10, end_frame=info.n_frames + 40)
    assert audio.size == 640 * 50
    assert np.all(audio[640 * 12:] == 0)


# ----------------------------------------------------------------------------------------------------
# synthetic clips: exact variable-frame-rate mapping, start times, rotation


def test_variable_frame_rate_maps_by_timestamp_and_audio_aligns_to_the_first_frame(tmp_path):
    rng = np.random.default_rng(7)
    # Irregular frame spacing (17 to 83 ms) and a video that starts 0.2 s after the audio.
    times = 0.2 + np.cumsum(np.r_[0, rng.choice([0.017, 0.033, 0.05, 0.083], size=35)])
    rate = 48000
    sound = np.zeros(int(rate * (times[-1] + 0.3)), np.float32)
    click_s = 1.0
    sound[int(click_s * rate)] = 0.8
    path = write_clip(tmp_path / "vfr.mp4", times, audio=sound, audio_rate=rate)

    info = probe(path)
    assert info.variable_frame_rate
    assert info.video_start_s == pytest.approx(0.2, abs=1e-3)
    span = times[-1] - times[0]
    assert abs(info.n_frames - span * 25) <= 2

    for index, frame in iter_frames(path):
        expected = level(nearest_source_frame(times, index))
        assert abs(float(frame.mean()) - expected) < 4, f"timeline frame {index}"

    audio = load_audio(path)
    click_at = int(np.argmax(np.abs(audio)))
    assert abs(click_at - (click_s - 0.2) * 16000) <= 16  # 1 ms: audio sample 0 is the first video frame


def test_rotation_metadata_is_applied(tmp_path):
    path = write_clip(tmp_path / "rotated.mp4", np.arange(10) / 25, size=(64, 48), rotation_ccw=90)
    info = probe(path)
    assert info.rotation == 270  # displayed = stored turned 90° counter-clockwise = 270° clockwise
    assert (info.width, info.height) == (48, 64)
    _, frame = next(iter_frames(path))
    assert frame.shape == (64, 48, 3)
    # The stored top-left mark ends bottom-left after a counter-clockwise quarter turn.
    assert frame[-8:, :8].mean() > 200
    assert frame[:8, :8].mean() < 60 and frame[-8:, -8:].mean() < 60


def random_rectangles(rng, height, width, count):
    """Rectangles anywhere in the frame, odd and even sizes and offsets, down to one pixel."""
    for _ in range(count):
        top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
        yield top, int(rng.integers(top + 1, height + 1)), left, int(rng.integers(left + 1, width + 1))


@pytest.mark.parametrize("name", ["latentsync_demo1.mp4", "edtalk_pose_source2.mp4", "mead_M030_sad_3_001.mp4",
                                  "gen_wav2lip288_test5_facial_dubbing.mov"])
def test_region_equals_the_slice_of_the_whole_frame(clip, name):
    # yuv420p BT.709 portrait, yuvj420p (full range), yuvj444p, odd chroma width (495): the region
    # path copies planes and converts them alone, which must give the very pixels of the whole frame.
    path = clip(name)
    rng = np.random.default_rng(len(name))
    whole = dict(iter_frames(path, start_frame=20, end_frame=24))
    for index, frame in iter_timeline(path, start_frame=20, end_frame=24):
        assert (frame.height, frame.width) == whole[index].shape[:2]
        for top, bottom, left, right in random_rectangles(rng, frame.height, frame.width, 6):
            np.testing.assert_array_equal(frame.region(top, bottom, left, right),
                                          whole[index][top:bottom, left:right])


@pytest.mark.parametrize("rotation_ccw", [90, 180, -90])
def test_region_follows_rotation(tmp_path, rotation_ccw):
    rng = np.random.default_rng(abs(rotation_ccw))
    path = write_clip(tmp_path / "rotated.mp4", np.arange(4) / 25, size=(96, 64), rotation_ccw=rotation_ccw)
    for _, frame in iter_timeline(path, end_frame=2):
        upright = frame.image()
        assert upright.shape[:2] == (frame.height, frame.width)
        for top, bottom, left, right in random_rectangles(rng, frame.height, frame.width, 8):
            np.testing.assert_array_equal(frame.region(top, bottom, left, right), upright[top:bottom, left:right])


def test_region_outside_the_frame_is_refused(tmp_path):
    path = write_clip(tmp_path / "small.mp4", np.arange(3) / 25, size=(64, 48))
    _, frame = next(iter_timeline(path))
    with pytest.raises(ValueError):
        frame.region(-1, 10, 0, 10)
    with pytest.raises(ValueError):
        frame.region(0, 10, 5, 65)


def test_timeline_frames_convert_on_request_and_repeat_as_one_object(tmp_path):
    # 10 fps source (no timeline instant is equidistant from two source frames): most source frames
    # cover two or three timeline instants, and those instants share one object.
    times = np.arange(10) / 10
    path = write_clip(tmp_path / "slow.mp4", times, size=(320, 240))
    pairs = list(iter_timeline(path))
    assert [i for i, _ in pairs] == list(range(probe(path).n_frames))
    for (a, frame_a), (b, frame_b) in zip(pairs, pairs[1:]):
        same_source = nearest_source_frame(times, a) == nearest_source_frame(times, b)
        assert (frame_a is frame_b) == same_source
    frame = pairs[4][1]
    assert frame.image().shape == (240, 320, 3) and frame.image(max_side=160).shape == (120, 160, 3)
    assert frame.image(max_side=160) is frame.image(max_side=160)  # converted once
    thumb = frame.thumbnail(64)
    assert thumb.shape == (48, 64, 3)
    assert abs(float(thumb.mean()) - level(2)) < 4
    # iter_frames hands out a repeated source frame as a copy: editing one leaves the other intact.
    (_, first), (_, second) = list(iter_frames(path, end_frame=2))
    first[:] = 0
    assert second.mean() > 10


def test_rotate_frame_turns_clockwise():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = 255  # top-left
    assert rotate_frame(image, 90)[0, -1].all()  # → top-right
    assert rotate_frame(image, 180)[-1, -1].all()  # → bottom-right
    assert rotate_frame(image, 270)[-1, 0].all()  # → bottom-left
    assert rotate_frame(image, 90).flags["C_CONTIGUOUS"]
    assert rotate_frame(image, 0) is image


# ----------------------------------------------------------------------------------------------------
# shift_audio


def test_shift_audio_delays_and_advances_by_exact_samples():
    audio = np.arange(1, 20001, dtype=np.int16)
    delayed = shift_audio(audio, 2.5)  # 1600 samples
    assert delayed.shape == audio.shape and delayed.dtype == audio.dtype
    assert np.all(delayed[:1600] == 0)
    np.testing.assert_array_equal(delayed[1600:], audio[:-1600])

    advanced = shift_audio(audio, -3)  # 1920 samples
    np.testing.assert_array_equal(advanced[:-1920], audio[1920:])
    assert np.all(advanced[-1920:] == 0)

    np.testing.assert_array_equal(shift_audio(audio, 0), audio)
    assert not np.any(shift_audio(audio, 100))  # beyond the length: silence


def test_shifted_clip_audio_moves_by_the_requested_frames(clip):
    audio = load_audio(clip("syncnet_example.avi"))
    shifted = shift_audio(audio, 5)
    lag = np.argmax(np.correlate(shifted[8000:40000].astype(float), audio[8000:36000].astype(float), "valid"))
    assert lag == 5 * 640


# ----------------------------------------------------------------------------------------------------
# error paths


def _one_line(exc: SyncNetError):
    assert "\n" not in exc.message and exc.message


def test_random_bytes_are_not_a_video(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as caught:
        probe(path)
    _one_line(caught.value)
    with pytest.raises(MediaError):
        list(iter_frames(path))


def test_an_image_is_not_a_video(tmp_path):
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(NoVideoStreamError) as caught:
        probe(path)
    _one_line(caught.value)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "speech.m4a"
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=16000, layout="mono")
    for start in range(0, 16000, 1024):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with pytest.raises(NoVideoStreamError) as caught:
        probe(path)
    _one_line(caught.value)
    with pytest.raises(NoVideoStreamError):
        load_audio(path)


def test_video_without_audio_raises_no_audio(tmp_path):
    path = write_clip(tmp_path / "silent.mp4", np.arange(10) / 25)
    assert probe(path).has_audio is False
    with pytest.raises(NoAudioError) as caught:
        load_audio(path)
    _one_line(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        probe(tmp_path / "nothing.mp4")


def test_videos_in_lists_only_video_files_sorted(tmp_path):
    from syncnet_fcn.media import videos_in

    for name in ("b.MP4", "a.avi", "notes.txt", "speech.wav", "c.mpg"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "clips.mp4").mkdir()  # a folder named like a video is not one
    assert [p.name for p in videos_in(tmp_path)] == ["a.avi", "b.MP4", "c.mpg"]
