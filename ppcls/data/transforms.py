"""Per-sample image operators, named as in PaddleClas release/2.0 configs.

Images stay uint8 HWC through decoding, cropping, flipping and augmentation; NormalizeImage is
the step that turns them into float32. Operators draw randomness from Python's ``random`` and
NumPy's global generators, which the dataset reseeds per sample (seed, epoch, index), so a run's
augmentations do not depend on the number of loader workers and a resumed run sees the same
images as an uninterrupted one.
"""
import math
import random
import re

import cv2
import numpy as np

from ..utils.config import check_params

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4,
}


_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


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
    if data[-2:] == b"\xff\xd9":     # the usual case: no need to search the scans backwards
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
        # RGB straight from the decoder (OpenCV >= 4.11; libjpeg-turbo writes RGB at no cost)
        # or a cvtColor swap: the same pixels as the former img[:, :, ::-1] copy, which took
        # as long as the decoding itself (tests/test_data_speed.py, docs/speed.md).
        rgb_flag = _IMREAD_RGB if self.to_rgb else None
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR if rgb_flag is None else rgb_flag)
        if img is None:
            raise BadImageError("cannot decode image (truncated, corrupt or not an image)")
        if self.to_rgb and rgb_flag is None:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if self.channel_first:
            img = np.ascontiguousarray(img.transpose((2, 0, 1)))
        return img


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
        self.chw = order == "chw"
        self.lut = normalize_table(self.mul, self.sub)
        self.lut_hwc = None if self.lut is None else np.ascontiguousarray(self.lut.T[None])

    def __call__(self, img):
        if self.lut is not None and img.dtype == np.uint8 and img.ndim == 3:
            if not self.chw and img.shape[2] == 3:
                return cv2.LUT(img, self.lut_hwc)
            if self.chw and img.shape[0] == 3:
                return lut_planes(img, self.lut)
        return img.astype(np.float32) * self.mul - self.sub


def normalize_table(mul, sub):
    """(3, 256) float32: ``v * mul[c] - sub[c]`` for every uint8 value v, computed with the same
    float32 operations as ``img.astype(np.float32) * mul - sub``, so a lookup gives the very
    same numbers in one pass instead of three. None unless there are 3 channels."""
    if mul.size != 3 or sub.size != 3:
        return None
    values = np.arange(256, dtype=np.float32)[None, :]
    return values * mul.reshape(3, 1) - sub.reshape(3, 1)


def lut_planes(img, lut, out=None):
    """uint8 (..., 3, H, W) -> float32 through the per-channel tables ``lut`` (3, 256), into
    ``out`` when given."""
    out = np.empty(img.shape, np.float32) if out is None else out
    planes, outs = img.reshape(-1, 3, *img.shape[-2:]), out.reshape(-1, 3, *img.shape[-2:])
    for n in range(planes.shape[0]):
        for c in range(3):
            cv2.LUT(planes[n, c], lut[c], dst=outs[n, c])
    return out


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


from .autoaugment import AutoAugment, RandAugment  # noqa: E402
from .mask_ops import MASK_OPS  # noqa: E402

OPS = {cls.__name__: cls for cls in (
    DecodeImage, ResizeImage, CropImage, RandCropImage, RandFlipImage, NormalizeImage,
    ToCHWImage, RandomErasing, AutoAugment, RandAugment)}
OPS.update(MASK_OPS)                    # Cutout, GridMask, HideAndSeek


def check_ops(ops, where):
    """Validate ``[{OpName: params}]`` against the operators' signatures and build them once."""
    for i, item in enumerate(ops):
        (name, params), = item.items()
        sub = where.child(f"{i}.{name}")
        if name not in OPS:
            import difflib
            hint = difflib.get_close_matches(name, OPS, 1)
            raise sub.error("unknown transform" + (f"; did you mean {hint[0]!r}?" if hint
                                                   else f"; available: {', '.join(sorted(OPS))}"))
        check_params(OPS[name].__init__, params, sub)
        try:
            OPS[name](**params)
        except (ValueError, TypeError) as e:
            raise sub.error(str(e)) from None


def check_pipeline(ops, section):
    """Run ``ops`` on a synthetic 640x480 encoded image: they must turn file bytes into a
    float32 CHW image with 3 channels, or the run would fail (or train on garbage) later.
    Raises ValueError naming the failing operator. The random generators are restored."""
    if not ops:
        raise ValueError(f"{section}.transforms is empty; it must turn file bytes into a float32 "
                         f"CHW image: DecodeImage, ..., NormalizeImage, ToCHWImage")
    py_state, np_state = random.getstate(), np.random.get_state()
    names = [next(iter(item)) for item in ops]
    try:
        data = cv2.imencode(".png", np.full((480, 640, 3), 128, np.uint8))[1].tobytes()
        for i, op in enumerate(build_transforms(ops)):
            try:
                data = op(data)
            except Exception as e:  # noqa: BLE001 - any failure is a recipe problem
                first = "" if i or names[0] == "DecodeImage" else " (the list must start with DecodeImage)"
                raise ValueError(f"{section}.transforms.{i}.{names[i]} fails on a 640x480 test "
                                 f"image{first}: {type(e).__name__}: {e}") from None
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    if not (isinstance(data, np.ndarray) and data.ndim == 3 and data.shape[0] == 3
            and data.dtype == np.float32):
        got = (f"{data.dtype} array of shape {list(data.shape)}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise ValueError(f"{section}.transforms {names} turn an image into a {got}; the model "
                         f"needs float32 CHW with 3 channels: end the list with NormalizeImage "
                         f"and ToCHWImage")


def build_transforms(ops):
    return [OPS[name](**params) for item in ops for name, params in item.items()]


class BatchNormalize:
    """``NormalizeImage`` applied once to a whole NCHW batch (any place: CPU or GPU tensor).

    The loader's workers then decode, crop and flip in uint8 and send uint8 CHW images, 4x less
    data through shared memory than float32, and the normalisation is one vectorised operation
    per batch instead of one NumPy pass per image. Same formula as ``NormalizeImage``
    (``x * (scale / std) - mean / std`` in float32), so the values are identical.
    """

    def __init__(self, normalize):
        self.mul = normalize.mul.reshape(1, 3, 1, 1)
        self.sub = normalize.sub.reshape(1, 3, 1, 1)
        self.lut = normalize_table(self.mul, self.sub)
        self._consts = {}

    def __call__(self, images):
        import paddle
        if images.place.is_cpu_place():       # Paddle's CPU kernels: ~25x slower than the table
            return paddle.to_tensor(self.numpy(images.numpy()), place=images.place)
        key = str(images.place)
        if key not in self._consts:
            self._consts[key] = (paddle.to_tensor(self.mul, place=images.place),
                                 paddle.to_tensor(self.sub, place=images.place))
        mul, sub = self._consts[key]
        return paddle.cast(images, "float32") * mul - sub

    def numpy(self, images, out=None):
        """The same values from NumPy images, into the float32 array ``out`` when given."""
        if images.dtype == np.uint8 and images.ndim == 4 and images.shape[1] == 3:
            return lut_planes(images, self.lut, out)
        values = images.astype(np.float32) * self.mul - self.sub
        if out is None:
            return values
        out[...] = values
        return out


def split_batch_normalize(ops):
    """Split built ``ops`` into (per-sample ops, BatchNormalize) when the pipeline ends with
    NormalizeImage + ToCHWImage (in either order, as PaddleClas recipes write them): the
    per-sample part then ends in a uint8 CHW image. Returns (ops, None) for any other pipeline
    (e.g. RandomErasing after NormalizeImage works on normalised values and stays per sample)."""
    if len(ops) >= 2:
        a, b = ops[-2], ops[-1]
        three = lambda n: n.mul.size == 3                                  # noqa: E731
        if (isinstance(a, NormalizeImage) and isinstance(b, ToCHWImage) and a.mul.shape == (1, 1, 3)
                and three(a)):
            return list(ops[:-2]) + [b], BatchNormalize(a)
        if (isinstance(a, ToCHWImage) and isinstance(b, NormalizeImage) and b.mul.shape == (3, 1, 1)
                and three(b)):
            return list(ops[:-1]), BatchNormalize(b)
    return list(ops), None


def apply_transforms(ops, data):
    for op in ops:
        data = op(data)
    return data
