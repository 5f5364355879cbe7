"""Image cleaning (xnode.media.process_image) and the content-addressed MediaStore."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from xnode.errors import InvalidInput, PayloadTooLarge
from xnode.media import (
    AVATAR,
    HEADER,
    MAX_PIXELS,
    THUMBNAIL,
    MediaStore,
    ProcessedImage,
    process_image,
)

LIMIT = 8 * 1024 * 1024
GPS_IFD = ExifTags.IFD.GPSInfo
ORIENTATION = 0x0112
MAKE = 0x010F


def jpeg_with_metadata(size: tuple[int, int] = (800, 600), orientation: int = 1) -> bytes:
    """A JPEG carrying a camera make, GPS position, ICC profile and a comment."""
    image = Image.new("RGB", size, (200, 40, 40))
    exif = Image.Exif()
    exif[MAKE] = "SpyCam 3000"
    exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (52.0, 22.0, 1.0), 3: "E", 4: (4.0, 53.0, 2.0)})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, icc_profile=icc, comment=b"home address here")
    return out.getvalue()


def png_bytes(size: tuple[int, int], mode: str = "RGB", **save: object) -> bytes:
    """A plain PNG of the given size and mode."""
    color = (10, 20, 30, 0) if mode == "RGBA" else (10, 20, 30)
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG", **save)
    return out.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions (a decompression bomb's opening)."""
    data = bytearray(png_bytes((1, 1)))
    # IHDR data starts after the 8-byte signature and the chunk's length and type.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def reopen(image: ProcessedImage) -> Image.Image:
    opened = Image.open(io.BytesIO(image.data))
    opened.load()
    return opened


def test_the_test_jpeg_really_carries_metadata():
    # Guards the other tests: they would pass vacuously on a clean input.
    source = Image.open(io.BytesIO(jpeg_with_metadata()))
    assert source.getexif().get_ifd(GPS_IFD)
    assert source.getexif()[MAKE] == "SpyCam 3000"
    assert source.info.get("icc_profile")
    assert source.info.get("comment")


@pytest.mark.parametrize("spec", [AVATAR, HEADER, THUMBNAIL])
def test_metadata_is_stripped(spec):
    data = jpeg_with_metadata()
    result = process_image(data, spec, LIMIT)
    cleaned = reopen(result)
    assert result.content_type == "image/jpeg"
    assert cleaned.format == "JPEG"
    assert dict(cleaned.getexif()) == {}
    assert not cleaned.getexif().get_ifd(GPS_IFD)
    assert "icc_profile" not in cleaned.info
    assert "comment" not in cleaned.info
    assert b"SpyCam" not in result.data
    assert b"home address" not in result.data


def test_avatar_is_cropped_square_and_at_most_400():
    result = process_image(jpeg_with_metadata((1200, 900)), AVATAR, LIMIT)
    assert (result.width, result.height) == (400, 400)
    assert reopen(result).size == (400, 400)


def test_header_is_cropped_to_three_by_one():
    result = process_image(png_bytes((3000, 3000)), HEADER, LIMIT)
    assert (result.width, result.height) == (1500, 500)


def test_small_images_are_not_upscaled():
    result = process_image(png_bytes((100, 80)), AVATAR, LIMIT)
    assert (result.width, result.height) == (80, 80)


def test_thumbnail_keeps_the_aspect_ratio():
    result = process_image(png_bytes((1000, 500)), THUMBNAIL, LIMIT)
    assert (result.width, result.height) == (400, 200)


def test_exif_orientation_is_applied_before_it_is_dropped():
    # Orientation 6 means "rotate 90° clockwise to display": landscape pixels, portrait photo.
    result = process_image(jpeg_with_metadata((800, 400), orientation=6), THUMBNAIL, LIMIT)
    assert (result.width, result.height) == (200, 400)


def test_transparency_is_kept_as_png_and_png_text_is_dropped():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret text chunk")
    result = process_image(png_bytes((50, 50), "RGBA", pnginfo=info), AVATAR, LIMIT)
    cleaned = reopen(result)
    assert (result.extension, result.content_type) == ("png", "image/png")
    assert cleaned.mode == "RGBA"
    assert cleaned.getpixel((0, 0))[3] == 0
    assert b"secret text chunk" not in result.data


def test_opaque_images_become_jpeg():
    result = process_image(png_bytes((50, 50)), AVATAR, LIMIT)
    assert (result.extension, reopen(result).format) == ("jpg", "JPEG")


@pytest.mark.parametrize(
    "data",
    [
        b"this is plain text, not a picture\n" * 10,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # a PNG signature and garbage
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
    ],
)
def test_non_images_are_refused(data):
    with pytest.raises(InvalidInput, match="not an image"):
        process_image(data, AVATAR, LIMIT)


def test_empty_upload_is_refused():
    with pytest.raises(InvalidInput, match="empty"):
        process_image(b"", AVATAR, LIMIT)


def test_unsupported_format_is_refused():
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "TIFF")
    with pytest.raises(InvalidInput, match="JPEG, PNG"):
        process_image(out.getvalue(), AVATAR, LIMIT)


def test_oversize_upload_is_refused_before_decoding():
    data = png_bytes((10, 10))
    with pytest.raises(PayloadTooLarge):
        process_image(data, AVATAR, len(data) - 1)
    assert process_image(data, AVATAR, len(data)).width == 10


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(8000, 8000), (20_000, 20_000), (100_000, 100_000)])
def test_huge_dimensions_are_refused(size):
    width, height = size
    assert width * height > MAX_PIXELS
    data = png_claiming_size(width, height)
    assert len(data) < 1000
    with pytest.raises(InvalidInput):
        process_image(data, AVATAR, LIMIT)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_real_bomb_is_refused_without_decoding():
    # 10000x10000 one-bit pixels compress to a few kilobytes.
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG")
    with pytest.raises(InvalidInput, match="too large"):
        process_image(out.getvalue(), AVATAR, LIMIT)


# --- MediaStore ------------------------------------------------------------------


def processed(data: bytes = b"pixels", extension: str = "jpg") -> ProcessedImage:
    return ProcessedImage(data, extension, f"image/{extension}", 1, 1)


def test_save_names_files_by_content_hash(tmp_path: Path):
    store = MediaStore(tmp_path / "media")
    name = store.save(processed(b"abc"))
    assert name == hashlib.sha256(b"abc").hexdigest() + ".jpg"
    path = store.path_for(name)
    assert path is not None
    assert path.read_bytes() == b"abc"
    assert path.parent.name == name[:2]
    assert MediaStore.url_for(name) == f"/media/{name}"
    assert MediaStore.url_for(None) is None


def test_save_is_idempotent(tmp_path: Path):
    store = MediaStore(tmp_path / "media")
    first = store.save(processed(b"same"))
    mtime = store.path_for(first).stat().st_mtime_ns
    second = store.save(processed(b"same"))
    assert first == second
    assert store.path_for(first).stat().st_mtime_ns == mtime
    files = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert len(files) == 1  # no leftover temporary files either


def test_different_content_gets_different_names(tmp_path: Path):
    store = MediaStore(tmp_path / "media")
    assert store.save(processed(b"one")) != store.save(processed(b"two"))
    assert store.save(processed(b"one", "png")).endswith(".png")


def test_path_for_refuses_traversal_and_malformed_names(tmp_path: Path):
    store = MediaStore(tmp_path / "media")
    name = store.save(processed(b"x"))
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    for bad in [
        "../secret.jpg",
        "../../etc/passwd",
        f"../{name}",
        f"{name[:2]}/{name}",
        name.upper(),
        name[:-4] + ".svg",
        name[:-4] + ".html",
        name + "/",
        "",
        ".",
    ]:
        assert store.path_for(bad) is None, bad


def test_path_for_unknown_file_is_none(tmp_path: Path):
    store = MediaStore(tmp_path / "media")
    assert store.path_for("0" * 64 + ".jpg") is None


def test_processed_image_round_trips_through_the_store(tmp_path: Path):
    store = MediaStore(tmp_path / "media")
    name = store.save(process_image(jpeg_with_metadata(), AVATAR, LIMIT))
    path = store.path_for(name)
    assert path is not None
    with Image.open(path) as image:
        assert image.size == (400, 400)
        assert dict(image.getexif()) == {}
