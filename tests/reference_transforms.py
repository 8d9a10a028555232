"""A frozen copy of the per-sample operators as they were before the input pipeline was made
fast (issue 18: ppcls/data/transforms.py and autoaugment.py at commit 1da8689), kept as the
straightforward reference that tests/test_data_speed.py compares the fast operators with, pixel
for pixel. Do not optimise this file: its value is that it is the old, obviously-correct code.
"""
import math
import random
import re
import zlib

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from ppcls.data.mask_ops import Cutout, GridMask, HideAndSeek

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4,
}


class BadImageError(ValueError):
    """An image that cannot be decoded (truncated, empty, not an image)."""


def _interp(value, default="bilinear"):
    if value is None:
        value = default
    if isinstance(value, int) and not isinstance(value, bool):
        return value                    # a cv2 flag, as PaddleClas configs sometimes give
    if value not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {value!r}")
    return INTERPOLATIONS[value]


def _number(value, name):
    """A float, or a fraction string such as PaddleClas's ``1./255.`` (parsed, never eval'ed)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]*(?:[eE][-+]?\d+)?)\s*(?:/\s*([0-9]*\.?[0-9]*(?:[eE][-+]?\d+)?)\s*)?",
                         value)
        if m and m.group(1) not in ("", "."):
            num = float(m.group(1))
            if m.group(2) is None:
                return num
            if m.group(2) not in ("", "."):
                return num / float(m.group(2))
    raise ValueError(f"{name} must be a number or a fraction like '1./255.', got {value!r}")


def jpeg_truncated(data):
    """True for JPEG bytes with no end-of-image marker after the last start-of-scan: a file cut
    short. Some OpenCV builds decode such files without error, grey-filling the missing part.
    (0xFFD9/0xFFDA cannot occur inside entropy-coded data, and an embedded EXIF thumbnail ends
    before the main image's scans begin.)"""
    if data[:3] != b"\xff\xd8\xff":
        return False
    return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


class DecodeImage:
    """Encoded bytes -> uint8 HWC, RGB by default. OpenCV converts grayscale, CMYK, 16-bit and
    alpha images to 8-bit 3-channel, so odd but valid files train as ordinary images; empty,
    truncated and non-image files raise BadImageError."""

    def __init__(self, to_rgb=True, to_np=False, channel_first=False):
        self.to_rgb, self.channel_first = to_rgb, channel_first

    def __call__(self, data):
        if isinstance(data, np.ndarray) and data.ndim == 3:
            return data
        if not len(data):
            raise BadImageError("empty file (0 bytes)")
        if jpeg_truncated(data):
            raise BadImageError("truncated JPEG (no end-of-image marker)")
        buf = np.frombuffer(data, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            raise BadImageError("cannot decode image (truncated, corrupt or not an image)")
        if self.to_rgb:
            img = img[:, :, ::-1]
        if self.channel_first:
            img = img.transpose((2, 0, 1))
        return np.ascontiguousarray(img)


class ResizeImage:
    """Resize to ``size`` (int or [w, h]) or so that the short side is ``resize_short``."""

    def __init__(self, size=None, resize_short=None, interpolation=None):
        if (size is None) == (resize_short is None):
            raise ValueError("give exactly one of size / resize_short")
        if size is not None:
            self.w, self.h = (size, size) if isinstance(size, int) else tuple(size)
        self.resize_short = resize_short
        self.interp = _interp(interpolation)

    def output_size(self, h, w):
        if self.resize_short is None:
            return self.h, self.w
        percent = float(self.resize_short) / min(w, h)
        return int(round(h * percent)), int(round(w * percent))

    def __call__(self, img):
        h, w = self.output_size(*img.shape[:2])
        return cv2.resize(img, (w, h), interpolation=self.interp)


class CropImage:
    """Center crop to ``size`` (int or [w, h])."""

    def __init__(self, size):
        self.w, self.h = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, img):
        h, w = img.shape[:2]
        if h < self.h or w < self.w:
            raise ValueError(f"CropImage: image {w}x{h} is smaller than the crop {self.w}x{self.h}; "
                             f"resize first (ResizeImage resize_short >= crop)")
        top, left = (h - self.h) // 2, (w - self.w) // 2
        return img[top:top + self.h, left:left + self.w]


class RandCropImage:
    """RandomResizedCrop: a random area fraction in ``scale`` and aspect ratio in ``ratio``
    (log-uniform), resized to ``size``; falls back to a center crop after 10 tries."""

    def __init__(self, size, scale=None, ratio=None, interpolation=None):
        self.w, self.h = (size, size) if isinstance(size, int) else tuple(size)
        self.scale = tuple(scale) if scale else (0.08, 1.0)
        self.ratio = tuple(ratio) if ratio else (3.0 / 4.0, 4.0 / 3.0)
        self.interp = _interp(interpolation)

    def get_params(self, h, w):
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
        in_ratio = w / h
        if in_ratio < min(self.ratio):
            cw, ch = w, int(round(w / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            ch, cw = h, int(round(h * max(self.ratio)))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, img):
        top, left, ch, cw = self.get_params(*img.shape[:2])
        crop = img[top:top + ch, left:left + cw]
        return cv2.resize(crop, (self.w, self.h), interpolation=self.interp)


class RandFlipImage:
    """Random flip with probability 0.5; flip_code 1 horizontal, 0 vertical, -1 both."""

    def __init__(self, flip_code=1):
        if flip_code not in (-1, 0, 1):
            raise ValueError(f"flip_code must be -1, 0 or 1, got {flip_code!r}")
        self.flip_code = flip_code

    def __call__(self, img):
        if random.random() < 0.5:
            return cv2.flip(img, self.flip_code)
        return img


class NormalizeImage:
    """(img * scale - mean) / std as float32; ``order: chw`` when the image is already CHW."""

    def __init__(self, scale=None, mean=None, std=None, order="hwc"):
        self.scale = _number(scale if scale is not None else 1.0 / 255.0, "scale")
        order = (order or "hwc").lower()
        if order not in ("hwc", "chw"):
            raise ValueError(f"order must be 'hwc' or 'chw', got {order!r}")
        shape = (3, 1, 1) if order == "chw" else (1, 1, 3)
        mean = mean if mean is not None else [0.485, 0.456, 0.406]
        std = std if std is not None else [0.229, 0.224, 0.225]
        self.mean = np.array(mean, dtype=np.float32).reshape(shape)
        self.std = np.array(std, dtype=np.float32).reshape(shape)
        self.mul = (self.scale / self.std).astype(np.float32)
        self.sub = (self.mean / self.std).astype(np.float32)

    def __call__(self, img):
        return img.astype(np.float32) * self.mul - self.sub


class ToCHWImage:
    def __call__(self, img):
        return np.ascontiguousarray(img.transpose((2, 0, 1)))


class RandomErasing:
    """Erase a random rectangle with probability ``EPSILON`` (area fraction in [sl, sh], aspect
    in [r1, 1/r1]); ``mode: const`` fills ``mean``, ``mode: pixel`` per-pixel normal noise
    (timm's --remode pixel). Works on CHW or HWC float images (after normalisation)."""

    def __init__(self, EPSILON=0.5, sl=0.02, sh=0.4, r1=0.3, mean=(0.0, 0.0, 0.0), mode="const"):
        if mode not in ("const", "pixel"):
            raise ValueError(f"mode must be 'const' or 'pixel', got {mode!r}")
        self.p, self.sl, self.sh, self.r1 = EPSILON, sl, sh, r1
        self.mean, self.mode = mean, mode

    def __call__(self, img):
        if random.random() >= self.p:
            return img
        chw = img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3)
        h, w = img.shape[1:] if chw else img.shape[:2]
        for _ in range(100):
            area = h * w * random.uniform(self.sl, self.sh)
            aspect = math.exp(random.uniform(math.log(self.r1), math.log(1 / self.r1)))
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if eh < h and ew < w:
                top, left = random.randint(0, h - eh), random.randint(0, w - ew)
                img = img.copy()
                c = img.shape[0] if chw else img.shape[2]
                if self.mode == "pixel":
                    fill = np.random.standard_normal((c, eh, ew) if chw else (eh, ew, c))
                else:
                    fill = np.array(self.mean, np.float32).reshape((c, 1, 1) if chw else (1, 1, c))
                if chw:
                    img[:, top:top + eh, left:left + ew] = fill
                else:
                    img[top:top + eh, left:left + ew] = fill
                return img
        return img



# ---- autoaugment.py
_FILL = (124, 116, 104)   # ImageNet mean colour for pixels uncovered by geometric ops
_MAX_LEVEL = 10.0


def _signed(v):
    return -v if random.random() < 0.5 else v


def _affine(img, matrix):
    return img.transform(img.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=_FILL)


def _shear_x(img, level):
    return _affine(img, (1, _signed(level / _MAX_LEVEL * 0.3), 0, 0, 1, 0))


def _shear_y(img, level):
    return _affine(img, (1, 0, 0, _signed(level / _MAX_LEVEL * 0.3), 1, 0))


def _translate_x(img, level):
    return _affine(img, (1, 0, _signed(level / _MAX_LEVEL * 0.45) * img.size[0], 0, 1, 0))


def _translate_y(img, level):
    return _affine(img, (1, 0, 0, 0, 1, _signed(level / _MAX_LEVEL * 0.45) * img.size[1]))


def _rotate(img, level):
    return img.rotate(_signed(level / _MAX_LEVEL * 30.0), resample=Image.BILINEAR, fillcolor=_FILL)


def _enhancer(cls):
    def op(img, level):
        return cls(img).enhance(1.0 + _signed(level / _MAX_LEVEL * 0.9))
    return op


def _posterize(img, level):
    return ImageOps.posterize(img, max(1, 8 - int(level / _MAX_LEVEL * 4)))


def _solarize(img, level):
    return ImageOps.solarize(img, 256 - int(level / _MAX_LEVEL * 256))


def _solarize_add(img, level, threshold=128):
    add = int(level / _MAX_LEVEL * 110)
    arr = np.asarray(img).astype(np.int16)
    out = np.where(arr < threshold, np.clip(arr + add, 0, 255), arr).astype(np.uint8)
    return Image.fromarray(out)


AA_OPS = {
    "ShearX": _shear_x, "ShearY": _shear_y, "TranslateX": _translate_x,
    "TranslateY": _translate_y, "Rotate": _rotate,
    "Color": _enhancer(ImageEnhance.Color), "Contrast": _enhancer(ImageEnhance.Contrast),
    "Brightness": _enhancer(ImageEnhance.Brightness), "Sharpness": _enhancer(ImageEnhance.Sharpness),
    "Posterize": _posterize, "Solarize": _solarize, "SolarizeAdd": _solarize_add,
    "AutoContrast": lambda img, level: ImageOps.autocontrast(img),
    "Equalize": lambda img, level: ImageOps.equalize(img),
    "Invert": lambda img, level: ImageOps.invert(img),
}

# The ImageNet policy of the AutoAugment paper: 25 sub-policies of two (op, prob, level).
IMAGENET_POLICY = [
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.8, 0), ("Equalize", 0.6, 0)), (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 0), ("Solarize", 0.2, 4)), (("Equalize", 0.4, 0), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 0)), (("Posterize", 0.8, 5), ("Equalize", 1.0, 0)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)), (("Equalize", 0.6, 0), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)), (("Rotate", 0.4, 9), ("Equalize", 0.6, 0)),
    (("Equalize", 0.0, 0), ("Equalize", 0.8, 0)), (("Invert", 0.6, 0), ("Equalize", 1.0, 0)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, 0)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 0)), (("Color", 0.4, 0), ("Equalize", 0.6, 0)),
    (("Equalize", 0.4, 0), ("Solarize", 0.2, 4)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 0)),
    (("Invert", 0.6, 0), ("Equalize", 1.0, 0)), (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 0), ("Equalize", 0.6, 0)),
]

RAND_OPS = ["AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize",
            "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY",
            "TranslateX", "TranslateY"]


class AutoAugment:
    """One random sub-policy of the ImageNet AutoAugment policy per image."""

    def __init__(self):
        pass

    def __call__(self, img):
        pil = Image.fromarray(img)
        for name, prob, level in random.choice(IMAGENET_POLICY):
            if random.random() < prob:
                pil = AA_OPS[name](pil, level)
        return np.asarray(pil)


class RandAugment:
    def __init__(self, num_layers=2, magnitude=9, magnitude_std=0.0, prob=0.5):
        if not 0 <= magnitude <= _MAX_LEVEL:
            raise ValueError(f"magnitude must be in [0, 10], got {magnitude}")
        self.num_layers, self.magnitude = num_layers, magnitude
        self.magnitude_std, self.prob = magnitude_std, prob

    def __call__(self, img):
        pil = Image.fromarray(img)
        for name in random.choices(RAND_OPS, k=self.num_layers):
            if random.random() >= self.prob:
                continue
            level = self.magnitude
            if self.magnitude_std > 0:
                level = min(_MAX_LEVEL, max(0.0, random.gauss(level, self.magnitude_std)))
            pil = AA_OPS[name](pil, level)
        return np.asarray(pil)


REFERENCE_OPS = {cls.__name__: cls for cls in (
    DecodeImage, ResizeImage, CropImage, RandCropImage, RandFlipImage, NormalizeImage,
    ToCHWImage, RandomErasing, AutoAugment, RandAugment)}
# Operators the speed work did not touch (release/2.0's occlusions, added beside it): their own
# classes are the reference; what is checked is that the faster operators around them give
# them the same input.
REFERENCE_OPS.update({cls.__name__: cls for cls in (Cutout, GridMask, HideAndSeek)})


def reference_item(data, transforms, seed=0, epoch=0, index=0):
    """The dataset item as ClassificationDataset.load computed it: reseed per (seed, epoch,
    index), then every operator of ``transforms`` ([{Name: params}]) in turn, per sample."""
    ops = [REFERENCE_OPS[name](**(params or {})) for item in transforms
           for name, params in item.items()]
    s = zlib.crc32(f"{seed}/{epoch}/{index}".encode())
    random.seed(s)
    np.random.seed(s)
    for op in ops:
        if hasattr(op, "set_epoch"):        # GridMask's probability ramp, as the dataset does
            op.set_epoch(epoch)
    for op in ops:
        data = op(data)
    return data
