"""syncnet_fcn: audio-visual sync detection with SyncNet, FCN-SyncNet and an embedded landmark engine."""

__version__ = "0.1.0"

# Frame i of the 25 fps timeline and audio samples [640*i, 640*(i+1)) at 16 kHz describe the same instant.
TIMELINE_FPS = 25
AUDIO_SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = AUDIO_SAMPLE_RATE // TIMELINE_FPS  # 640

SIGN_CONVENTION = (
    "offset_frames > 0: the audio leads the video (sound arrives early); video frame i matches "
    "audio frame i - offset. Delaying the audio by S frames changes the reading from B to B - S."
)
