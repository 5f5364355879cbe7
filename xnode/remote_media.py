"""Other servers' images and media, fetched by the node and served from a bounded cache.

A page that loads an avatar or a photo straight from another server tells that
server who is reading, from which address, and when; and it needs a
Content-Security-Policy open to every https origin. So remote avatars, headers
and post media are shown from ``/media/remote/…``: the node fetches each once,
with the SSRF-safe client (no private addresses, size and time limits), keeps
it in ``DATA/cache/remote-media`` and serves it from there.

Only URLs the node itself stored (from actors and posts) are fetched: the
paths name an account or an attachment by id, never a URL, so this is no open
proxy. Only image, video and audio formats recognised by their first bytes are
kept and served, under the type those bytes say (never the type the other
server claimed, never SVG or HTML). The cache is bounded in size: when it
grows past ``cache_bytes`` the least recently used files go.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from federation.http import Fetcher, FetchError, FetchSettings, TooLarge

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_MEDIA_BYTES = 40 * 1024 * 1024
FETCH_TIMEOUT_S = 20.0
FAILURE_MEMORY_S = 600.0
"""A URL that could not be fetched is not tried again for this long."""
CONCURRENT_FETCHES = 4
EVICT_TO = 0.8
"""Eviction brings the cache down to this share of its bound."""

# Formats by their first bytes: (offset, signature, media type, extension).
_SIGNATURES: tuple[tuple[int, bytes, str, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (0, b"GIF87a", "image/gif", "gif"),
    (0, b"GIF89a", "image/gif", "gif"),
    (8, b"WEBP", "image/webp", "webp"),  # after "RIFF" and a length
    (4, b"ftypavif", "image/avif", "avif"),
    (4, b"ftypheic", "image/heic", "heic"),
    (4, b"ftypisom", "video/mp4", "mp4"),
    (4, b"ftypmp42", "video/mp4", "mp4"),
    (4, b"ftypM4V", "video/mp4", "mp4"),
    (4, b"ftypM4A", "audio/mp4", "m4a"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm", "webm"),
    (0, b"OggS", "audio/ogg", "ogg"),
    (0, b"ID3", "audio/mpeg", "mp3"),
    (0, b"\xff\xfb", "audio/mpeg", "mp3"),
)
CONTENT_TYPES = {ext: media_type for _, _, media_type, ext in _SIGNATURES}


def sniff(body: bytes) -> tuple[str, str] | None:
    """(media type, extension) of a body by its first bytes; None when not one we serve."""
    for offset, signature, media_type, extension in _SIGNATURES:
        if body[offset : offset + len(signature)] == signature:
            if extension == "webp" and not body.startswith(b"RIFF"):
                continue
            return media_type, extension
    return None


class Unavailable(Exception):
    """The remote file cannot be had (refused, too large, not a served format, unreachable)."""


@dataclass(frozen=True)
class CachedFile:
    """A remote file as the cache holds it."""

    path: Path
    content_type: str


class RemoteMediaCache:
    """Fetches remote media once and serves it from disk, within a size bound."""

    def __init__(self, directory: Path, fetch: FetchSettings, cache_bytes: int) -> None:
        self.directory = directory
        self.fetch_settings = dataclasses.replace(
            fetch, timeout_s=FETCH_TIMEOUT_S, max_bytes=MAX_MEDIA_BYTES
        )
        self.cache_bytes = cache_bytes
        self._fetcher: Fetcher | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._failed: dict[str, float] = {}
        self._slots = asyncio.Semaphore(CONCURRENT_FETCHES)
        self._size: int | None = None  # bytes on disk, counted on first use

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._fetcher is not None:
            await self._fetcher.close()
            self._fetcher = None

    @staticmethod
    def _key(url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()[:40]

    def _find(self, key: str) -> CachedFile | None:
        for extension, media_type in CONTENT_TYPES.items():
            path = self.directory / f"{key}.{extension}"
            if path.is_file():
                return CachedFile(path, media_type)
        return None

    async def get(self, url: str, *, image_only: bool = False) -> CachedFile:
        """The cached copy of ``url``, fetching it first if needed.

        Raises:
            Unavailable: it cannot be fetched, or is not a format we serve.
        """
        key = self._key(url)
        found = self._find(key)
        if found is not None:
            with contextlib.suppress(OSError):
                os.utime(found.path)  # least recently used goes first
            return found
        failed_at = self._failed.get(key)
        if failed_at is not None and time.monotonic() - failed_at < FAILURE_MEMORY_S:
            raise Unavailable("fetching it failed a moment ago")
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                found = self._find(key)
                if found is None:
                    found = await self._fetch(url, key, image_only=image_only)
                return found
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _fetch(self, url: str, key: str, *, image_only: bool) -> CachedFile:
        if self._fetcher is None:
            self._fetcher = Fetcher(self.fetch_settings)
        limit = MAX_IMAGE_BYTES if image_only else MAX_MEDIA_BYTES
        try:
            async with self._slots:
                response = await self._fetcher.get(url, max_bytes=limit)
        except TooLarge as exc:
            self._failed[key] = time.monotonic()
            raise Unavailable(f"larger than {limit // (1024 * 1024)} MB") from exc
        except FetchError as exc:
            self._failed[key] = time.monotonic()
            raise Unavailable(str(exc)) from exc
        found = sniff(response.body)
        if found is None or (image_only and not found[0].startswith("image/")):
            self._failed[key] = time.monotonic()
            raise Unavailable(f"not a format we serve ({response.content_type or 'no type'})")
        media_type, extension = found
        path = self.directory / f"{key}.{extension}"
        await asyncio.to_thread(self._write, path, response.body)
        return CachedFile(path, media_type)

    def _write(self, path: Path, body: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(body)
        partial.replace(path)
        if self._size is None:
            self._size = sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())
        else:
            self._size += len(body)
        if self._size > self.cache_bytes:
            self._evict()

    def _evict(self) -> None:
        """Remove the least recently used files until the cache is well under its bound."""
        files = []
        for entry in self.directory.iterdir():
            with contextlib.suppress(OSError):
                stat = entry.stat()
                files.append((stat.st_mtime, stat.st_size, entry))
        files.sort()
        size = sum(size for _, size, _ in files)
        for _, file_size, entry in files:
            if size <= self.cache_bytes * EVICT_TO:
                break
            with contextlib.suppress(OSError):
                entry.unlink()
                size -= file_size
        self._size = size
        log.info("remote media cache trimmed to %d bytes", size)
