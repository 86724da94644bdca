"""Load one image safely, from a path or an http(s) URL, for every image converter.

Catalog images and user photos are untrusted: a file may be missing, empty, truncated, huge, or a
decompression bomb (a few KB that decode to gigapixels). Every such case becomes an
:class:`agent.core.errors.InputError` that says which file and what to do, before any model sees it.
Size limits are checked on the bytes first, then on the header's pixel count *before* decoding,
and only then is the image decoded fully (``Image.load``) so that a truncated file fails here and
not later inside OCR or CLIP with a misleading message.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import InputError
from agent.ingest.files import check_media_file

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from agent.core.config import Settings

#: Formats Pillow decodes that make sense for posters and photos. Others (PSD, EPS, ICO, ...)
#: are refused with a message listing these.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")

URL_TIMEOUT_S = 15.0
_USER_AGENT = "recsage/0.1 (image fetch)"


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def read_image_bytes(source: str | Path, max_bytes: int, timeout: float = URL_TIMEOUT_S) -> bytes:
    """The raw bytes of a local file or an http(s) URL, refusing anything over ``max_bytes``."""
    if is_url(source):
        return _fetch_url(str(source), max_bytes, timeout)
    path = check_media_file(source, "image", max_bytes, "max_image_bytes")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read image file {path}: {exc.strerror or exc}") from None


def _fetch_url(url: str, max_bytes: int, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise InputError(
                    f"image at {url} is {int(declared):,} bytes, over the limit of {max_bytes:,} "
                    "(setting max_image_bytes)"
                )
            data = response.read(max_bytes + 1)  # never trust Content-Length alone
    except InputError:
        raise
    except urllib.error.HTTPError as exc:
        raise InputError(f"could not fetch image {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise InputError(
            f"could not fetch image {url}: {reason} (timeout {timeout:g} s); "
            "check the network, or download the file and pass a local path"
        ) from None
    if len(data) > max_bytes:
        raise InputError(
            f"image at {url} is over the limit of {max_bytes:,} bytes (setting max_image_bytes)"
        )
    if not data:
        raise InputError(f"image at {url} is empty (0 bytes)")
    return data


def decode_image(data: bytes, max_pixels: int, label: str = "image") -> Image.Image:
    """Decode bytes into a fully loaded RGB image, checking the pixel count before decoding."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    valid = ", ".join(SUPPORTED_FORMATS)
    _keep_bomb_check(max_pixels)
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=None)
    except UnidentifiedImageError:
        raise InputError(
            f"{label} is not an image Pillow can read (corrupt, or an unsupported format); "
            f"supported formats: {valid}"
        ) from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{label} refused as a possible decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{label} has a corrupt image header: {exc}") from None

    if img.format not in SUPPORTED_FORMATS:
        raise InputError(f"{label} is in {img.format} format; supported formats: {valid}")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InputError(f"{label} has an invalid size {width}x{height}")
    if width * height > max_pixels:
        raise InputError(
            f"{label} is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (setting max_image_pixels); refused before decoding"
        )
    try:
        img.load()  # decode now: a truncated or corrupt file fails here, not inside a model
        img = ImageOps.exif_transpose(img) or img
        return to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{label} refused as a possible decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(
            f"{label} is corrupt or truncated ({exc}); re-download or remove it"
        ) from None


def _keep_bomb_check(max_pixels: int) -> None:
    """Pillow's own decompression-bomb check stays on: a library that set it to None would leave
    frames Pillow sizes after ``open`` (animated GIF, multi-page TIFF, on ``seek``) unchecked."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is None:
        Image.MAX_IMAGE_PIXELS = max_pixels


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB with transparency flattened onto white (dark text on a transparent logo stays legible)."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def load_image(path_or_url: str | Path, settings: Settings) -> Image.Image:
    """Load a local file or an http(s) URL as a fully decoded RGB image, within the limits in
    ``settings`` (``max_image_bytes``, ``max_image_pixels``); raise InputError otherwise."""
    # the file's name, never its folder: error messages reach HTTP clients
    label = str(path_or_url) if is_url(path_or_url) else f"image file {Path(path_or_url).name}"
    data = read_image_bytes(path_or_url, settings.max_image_bytes)
    return decode_image(data, settings.max_image_pixels, label=label)


def poster_image(path: str | Path | None, max_bytes: int) -> tuple[bytes, str] | None:
    """The bytes and MIME type of a stored poster if the file is an image Pillow verifies (a
    supported format, at most ``max_bytes``); None otherwise, so that no other file a catalog once
    named is ever served. The bytes are read once: what was checked is what is sent."""
    from PIL import Image

    if not path or not Path(path).is_file():  # not a device or a pipe, which could block the read
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError:
        return None
    if not data or len(data) > max_bytes:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format
                image.verify()
    except Exception:  # noqa: BLE001 - anything Pillow cannot verify is not served
        return None
    if fmt not in SUPPORTED_FORMATS:
        return None
    return data, Image.MIME.get(fmt, "application/octet-stream")
