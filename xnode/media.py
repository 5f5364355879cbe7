"""Image uploads: decode, strip metadata, re-encode, resize, store by content hash.

Every uploaded image is decoded and re-encoded with Pillow, so nothing the
uploader put in the file (EXIF location, colour-profile tricks, polyglot
payloads) survives; only pixels do. Pillow is imported lazily: it is only
needed when an image arrives, and start-up stays light.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xnode.errors import InvalidInput, PayloadTooLarge

# Refuse decompression bombs before decoding: 40 megapixels is far beyond any
# phone photo but keeps the decoded bitmap under ~160 MB.
MAX_PIXELS = 40_000_000
ACCEPTED_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp")
"""What uploads may be (decoded, then stored as JPEG or PNG)."""
_FILE_NAME = re.compile(r"^[0-9a-f]{64}\.(?:jpg|png)$")


@dataclass(frozen=True)
class ImageSpec:
    """How an image of one kind is resized."""

    max_width: int
    max_height: int
    crop_to_fill: bool


AVATAR = ImageSpec(400, 400, crop_to_fill=True)
HEADER = ImageSpec(1500, 500, crop_to_fill=True)
POST_IMAGE = ImageSpec(2048, 2048, crop_to_fill=False)
THUMBNAIL = ImageSpec(400, 400, crop_to_fill=False)


@dataclass(frozen=True)
class ProcessedImage:
    """A cleaned, re-encoded image ready to store."""

    data: bytes
    extension: str
    content_type: str
    width: int
    height: int


def process_image(data: bytes, spec: ImageSpec, max_bytes: int) -> ProcessedImage:
    """Decode an uploaded image and re-encode it without metadata at the spec's size.

    Args:
        data: the uploaded bytes.
        spec: target size and cropping.
        max_bytes: the upload limit.

    Returns:
        A PNG (if the image has transparency) or JPEG.

    Raises:
        PayloadTooLarge: the upload exceeds ``max_bytes``.
        InvalidInput: not an image Pillow can decode, or too many pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The image is larger than the {max_bytes // (1024 * 1024)} MB limit."
        )
    if not data:
        raise InvalidInput("The uploaded file is empty.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise InvalidInput(
                    f"The image is too large ({width}x{height} pixels); "
                    f"the limit is {MAX_PIXELS // 1_000_000} megapixels."
                )
            if probe.format not in ("JPEG", "PNG", "GIF", "WEBP", "BMP"):
                raise InvalidInput("Upload a JPEG, PNG, GIF or WebP image.")
            probe.seek(0)  # first frame of an animation
            probe.load()
            image = ImageOps.exif_transpose(probe) or probe
            image = image.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise InvalidInput("The file is not an image that can be read.") from None
    except Image.DecompressionBombError:
        raise InvalidInput("The image has too many pixels.") from None
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    image = image.convert("RGBA" if has_alpha else "RGB")
    if spec.crop_to_fill:
        image = ImageOps.fit(
            image, _fit_size(image.size, spec), method=Image.Resampling.LANCZOS
        )
    else:
        image.thumbnail((spec.max_width, spec.max_height), Image.Resampling.LANCZOS)
    # Pillow writes some source metadata back by default (a JPEG comment).
    image.info.clear()
    out = io.BytesIO()
    if has_alpha:
        image.save(out, format="PNG", optimize=True)
        extension, content_type = "png", "image/png"
    else:
        image.save(out, format="JPEG", quality=85, optimize=True, progressive=True)
        extension, content_type = "jpg", "image/jpeg"
    return ProcessedImage(out.getvalue(), extension, content_type, image.width, image.height)


def _fit_size(size: tuple[int, int], spec: ImageSpec) -> tuple[int, int]:
    """The crop target: the spec's aspect ratio, never upscaling a small image."""
    width, height = size
    scale = min(1.0, width / spec.max_width, height / spec.max_height)
    return max(1, round(spec.max_width * scale)), max(1, round(spec.max_height * scale))


class MediaStore:
    """Files under ``DATA/media`` named by the SHA-256 of their content."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, image: ProcessedImage) -> str:
        """Store an image (atomically, once per content) and return its file name."""
        name = f"{hashlib.sha256(image.data).hexdigest()}.{image.extension}"
        path = self._path(name)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(image.data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return name

    def _path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def path_for(self, name: str) -> Path | None:
        """The file for a stored name, or None if the name is malformed or missing."""
        if not _FILE_NAME.match(name):
            return None
        path = self._path(name)
        return path if path.is_file() else None

    @staticmethod
    def url_for(name: str | None) -> str | None:
        """The URL path where a stored file is served."""
        return None if name is None else f"/media/{name}"
