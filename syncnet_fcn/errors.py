"""Errors a user can cause. Each carries an HTTP status and a one-line message.

Front ends catch :class:`SyncNetError`: the CLI prints ``error: <message>`` and exits 2, the REST API
answers ``{"error": {"code", "message"}}`` with :attr:`SyncNetError.http_status`. Any other exception
is a bug in this package.
"""


class SyncNetError(Exception):
    """Base class: bad input, missing weights, nothing to analyse."""

    code = "sync_error"
    http_status = 422

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class MediaError(SyncNetError):
    """The file cannot be opened or decoded as a video."""

    code = "invalid_media"
    http_status = 415


class MediaTooLargeError(MediaError):
    """The container's headers declare more than the media limits allow (frame size, length, streams)."""

    code = "media_too_large"
    http_status = 413


class NoVideoStreamError(MediaError):
    code = "no_video_stream"
    http_status = 415


class NoAudioError(SyncNetError):
    """The video has no audio track (sync needs one)."""

    code = "no_audio"
    http_status = 422


class NoFaceError(SyncNetError):
    """No face track long enough to analyse."""

    code = "no_face"
    http_status = 422


class WeightsError(SyncNetError):
    """Weights missing, unreadable, of the wrong layout, or failing their checksum."""

    code = "weights_unavailable"
    http_status = 503


class DownloadError(WeightsError):
    code = "download_failed"


class EngineUnavailableError(SyncNetError):
    """The requested engine cannot run here (e.g. its weights are absent)."""

    code = "engine_unavailable"
    http_status = 400


class InvalidArgumentError(SyncNetError):
    code = "invalid_argument"
    http_status = 400


class NotFoundError(SyncNetError):
    """What a request names (a monitor, a job, a job's file) is not here, or no longer kept."""

    code = "not_found"
    http_status = 404


class TooManyMonitorsError(SyncNetError):
    """The server already runs as many live monitors as it allows."""

    code = "too_many_monitors"
    http_status = 429


class ServerBusyError(SyncNetError):
    """Every worker is busy or the job queue is full: try again shortly (``Retry-After``)."""

    code = "busy"
    http_status = 503
