"""AutoAugment (ImageNet policy) and RandAugment on uint8 HWC RGB arrays, via PIL.

Magnitudes follow the AutoAugment paper's 10 levels; RandAugment follows the timm variant the
ReXNet recipe used (``rand-m9-mstd0.5``: each of ``num_layers`` ops applied with probability
0.5, magnitude drawn from N(magnitude, magnitude_std) clipped to [0, 10], random sign).
"""
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

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


OPS = {
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
                pil = OPS[name](pil, level)
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
            pil = OPS[name](pil, level)
        return np.asarray(pil)
