"""What the aiortc call client sends: a synthetic tone and moving frames, or a file.

:class:`MediaSource` makes fresh tracks for each call of a
:class:`~xnode.calls.client.CallClient`; every track counts the frames it sent
(``frames_sent``), which the client's reports show.
aiortc and PyAV are imported only when the first tracks are made (see ``client.py``).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from array import array
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack

AUDIO_RATE = 48_000
AUDIO_PTIME_S = 0.02
VIDEO_SIZE = (320, 240)
VIDEO_FPS = 30


@functools.cache
def _track_classes() -> tuple[type, type, type]:
    """(tone, moving frames, counting wrapper) track classes, defined once aiortc is loaded."""
    import av
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class PacedTrack(MediaStreamTrack):
        """Frames every ``period_s``, paced in real time from the first one."""

        period_s = 1.0

        def __init__(self) -> None:
            super().__init__()
            self._count = 0  # frames before this one
            self._start: float | None = None
            self.frames_sent = 0

        async def _next(self) -> int:
            """Wait until the next frame is due; its number (0 for the first)."""
            if self.readyState != "live":
                raise MediaStreamError
            if self._start is None:
                self._start = time.monotonic()
            else:
                self._count += 1
                await asyncio.sleep(self._start + self._count * self.period_s - time.monotonic())
            self.frames_sent += 1
            return self._count

    class ToneTrack(PacedTrack):
        """A 440 Hz tone, 20 ms frames at 48 kHz."""

        kind = "audio"
        period_s = AUDIO_PTIME_S

        def __init__(self) -> None:
            super().__init__()
            # One second of the tone (a whole number of 20 ms frames), played in a loop.
            self._second = array("h", (
                int(8000 * math.sin(2 * math.pi * 440 * n / AUDIO_RATE))
                for n in range(AUDIO_RATE)
            )).tobytes()  # fmt: skip
            self._samples = int(AUDIO_RATE * AUDIO_PTIME_S)

        async def recv(self) -> Any:
            pts = await self._next() * self._samples
            frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
            offset = (pts % AUDIO_RATE) * 2
            frame.planes[0].update(self._second[offset:offset + 2 * self._samples])
            frame.pts = pts
            frame.sample_rate = AUDIO_RATE
            frame.time_base = Fraction(1, AUDIO_RATE)
            return frame

    class MovingFramesTrack(PacedTrack):
        """Grey frames with a white bar that moves across them, 30 frames a second."""

        kind = "video"
        period_s = 1 / VIDEO_FPS

        async def recv(self) -> Any:
            count = await self._next()
            width, height = VIDEO_SIZE
            frame = av.VideoFrame(width, height, "yuv420p")
            luma = frame.planes[0]
            bar = (count * 4) % (width - 16)
            row = bytes([64]) * bar + bytes([235]) * 16
            row += bytes([64]) * (luma.line_size - len(row))
            luma.update(row * height)
            for chroma in frame.planes[1:]:
                chroma.update(bytes([128]) * chroma.buffer_size)
            frame.pts = count * (90_000 // VIDEO_FPS)
            frame.time_base = Fraction(1, 90_000)
            return frame

    class CountingTrack(MediaStreamTrack):
        """Another track's frames (a file's, say), counted as they are sent."""

        def __init__(self, source: MediaStreamTrack) -> None:
            super().__init__()
            self.kind = source.kind
            self._source = source
            self.frames_sent = 0

        async def recv(self) -> Any:
            frame = await self._source.recv()
            self.frames_sent += 1
            return frame

    return ToneTrack, MovingFramesTrack, CountingTrack


@dataclass
class MediaSource:
    """What a client sends: a synthetic tone and moving frames, or a file.

    ``file``: anything ffmpeg reads (through ``aiortc.contrib.media.MediaPlayer``);
    its audio and video streams replace the synthetic ones.
    """

    file: str | None = None

    def tracks(self, video: bool) -> list[MediaStreamTrack]:
        """Fresh tracks for one call: audio, and video when ``video``."""
        tone, moving, counting = _track_classes()
        if self.file is None:
            return [tone(), moving()] if video else [tone()]
        from aiortc.contrib.media import MediaPlayer

        player = MediaPlayer(self.file)
        found = [player.audio] + ([player.video] if video else [])
        return [counting(track) for track in found if track is not None]
