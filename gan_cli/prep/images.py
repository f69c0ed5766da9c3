"""Reading one source image into a uint8 (C, R, R) array, or the reason it was skipped."""
from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps

FILTERS = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR,
           "box": Image.BOX, "nearest": Image.NEAREST}


def _square(img: Image.Image, resolution: int, crop: str, resample, background) -> Image.Image:
    w, h = img.size
    if crop == "pad":  # letterbox: the whole image onto the background
        scale = resolution / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)
        canvas = Image.new(img.mode, (resolution, resolution), background if img.mode == "RGB" else background[0])
        canvas.paste(img, ((resolution - img.width) // 2, (resolution - img.height) // 2))
        return canvas
    if crop == "wide":  # stylegan2-ada center-crop-wide: keep the full width, crop height to 2:1 ... then pad
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2) if h > w else (0, 0, w, h)
        img = img.crop(box)
        return _square(img, resolution, "pad", resample, background)
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    return img.resize((resolution, resolution), resample)


def _draft(img: Image.Image, resolution: int, crop: str) -> None:
    """A JPEG much larger than needed decodes at 1/2, 1/4 or 1/8 scale (its DCT does the reduction, most
    of the decoding is saved), but never below twice the size the final resize makes: that resize, with
    the chosen filter, still does the last factor of 2 or more (PIL's `reducing_gap` idea)."""
    if img.format != "JPEG":
        return
    w, h = img.size
    side = min(w, h) if crop == "center" else max(w, h)  # the side that is resized to `resolution`
    scale = side / (2 * resolution)
    if scale >= 2:
        img.draft(img.mode, (math.ceil(w / scale), math.ceil(h / scale)))


def decode(data: bytes, resolution: int, channels: int, crop: str, filter: str, background: tuple[int, int, int],
           min_size: int) -> np.ndarray | str:
    """The image as uint8 (C, R, R), or a short reason it cannot be used."""
    if not data:
        return "empty"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if min(img.size) < min_size:
                return "smaller than min_size"
            _draft(img, resolution, crop)
            img.load()
            img = ImageOps.exif_transpose(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "decompression bomb"
    except Exception:  # noqa: BLE001 - any decoder failure is a skipped file
        return "not a readable image"
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        base = Image.new("RGBA", img.size, (*background, 255))
        img = Image.alpha_composite(base, img)
    img = img.convert("RGB" if channels == 3 else "L")
    img = _square(img, resolution, crop, FILTERS[filter], background)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()
