"""Write the built-in demo dataset: the 1,797 8x8 handwritten digits that scikit-learn ships
(no download), as 32x32 grayscale PNGs with a fixed stratified split.

  python tools/prepare_demo_data.py [--out dataset/digits] [--digits 0-9]

Writes OUT/images/<digit>/<n>.png, OUT/train_list.txt, OUT/val_list.txt (``path label``) and
OUT/label_list.txt. ``--digits 0-4`` keeps a subset (labels renumbered from 0), used by the
fine-tuning demo. ``--train_per_class N`` keeps only N training images per digit (the validation
images stay the same 359): the small training set of the comparison demo, where differences
between models show.

  python tools/prepare_demo_data.py --photos 512 [--out dataset/photos] [--photo_size 500x375]

writes instead a folder of ImageNet-sized synthetic JPEG photographs (smooth colour fields,
edges and sensor-like noise, quality 90, ~50-100 KB each, ImageFolder layout with 8 classes and
the same list files), by default to dataset/photos: the data-loading measurement of
docs/speed.md and `tools/benchmark.py --mode data` (decode + crop cost).
"""
import argparse
import os

import cv2
import numpy as np


def parse_digits(text):
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(d) for d in text.split(",")]


def prepare(out, digits=tuple(range(10)), val_fraction=0.2, size=32, seed=0, train_per_class=None):
    from sklearn.datasets import load_digits
    data = load_digits()
    images, targets = data.images, data.target
    rng = np.random.RandomState(seed)
    os.makedirs(out, exist_ok=True)
    train_lines, val_lines = [], []
    for new_label, digit in enumerate(digits):
        idx = np.flatnonzero(targets == digit)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * val_fraction))
        folder = os.path.join(out, "images", str(digit))
        os.makedirs(folder, exist_ok=True)
        if train_per_class is not None:     # the same validation split, fewer training images
            idx = idx[:n_val + train_per_class]
        for rank, i in enumerate(idx):
            img = (images[i] / 16.0 * 255.0).clip(0, 255).astype(np.uint8)
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)
            rel = f"images/{digit}/{i:04d}.png"
            cv2.imwrite(os.path.join(out, rel), img)
            (val_lines if rank < n_val else train_lines).append(f"{rel} {new_label}")
    for name, lines in (("train_list.txt", train_lines), ("val_list.txt", val_lines)):
        with open(os.path.join(out, name), "w") as f:
            f.write("\n".join(sorted(lines)) + "\n")
    with open(os.path.join(out, "label_list.txt"), "w") as f:
        f.write("".join(f"{i} digit_{d}\n" for i, d in enumerate(digits)))
    return len(train_lines), len(val_lines)


def synthetic_photo(rng, w, h):
    """A BGR uint8 image that costs what a photograph costs to decode: low-frequency colour,
    a few hard edges and per-pixel noise (pure noise or flat colour would not)."""
    small = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (x0, y0), int(rng.integers(10, h // 2)),
                   [int(c) for c in rng.integers(-80, 80, 3)], -1)
    img += rng.normal(0, 12, img.shape).astype(np.int16)
    return img.clip(0, 255).astype(np.uint8)


def prepare_photos(out, count=512, size=(500, 375), classes=8, val_fraction=0.2, seed=0):
    rng = np.random.default_rng(seed)
    train_lines, val_lines = [], []
    for i in range(count):
        label = i % classes
        folder = os.path.join(out, "images", f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        rel = f"images/class_{label}/{i:05d}.jpg"
        cv2.imwrite(os.path.join(out, rel), synthetic_photo(rng, *size),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        (val_lines if i % int(round(1 / val_fraction)) == 0 else train_lines).append(f"{rel} {label}")
    for name, lines in (("train_list.txt", train_lines), ("val_list.txt", val_lines)):
        with open(os.path.join(out, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "label_list.txt"), "w") as f:
        f.write("".join(f"{i} class_{i}\n" for i in range(classes)))
    return len(train_lines), len(val_lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="default dataset/digits (--photos: dataset/photos)")
    p.add_argument("--digits", default="0-9", help="which digits, e.g. 0-9, 0-4 or 5,6,7")
    p.add_argument("--val_fraction", type=float, default=0.2)
    p.add_argument("--train_per_class", type=int, default=None,
                   help="keep only this many training images per digit (validation unchanged)")
    p.add_argument("--photos", type=int, default=0,
                   help="write this many synthetic JPEG photographs instead of the digits")
    p.add_argument("--photo_size", default="500x375", help="WxH of --photos (default 500x375)")
    args = p.parse_args()
    if args.out is None:
        args.out = "dataset/photos" if args.photos else "dataset/digits"
    if args.photos:
        try:
            w, h = (int(v) for v in args.photo_size.lower().split("x"))
        except ValueError:
            p.error(f"--photo_size must look like 500x375, got {args.photo_size!r}")
        n_train, n_val = prepare_photos(args.out, args.photos, (w, h),
                                        val_fraction=args.val_fraction)
        print(f"wrote {n_train} training and {n_val} validation JPEGs ({w}x{h}) to {args.out}")
        return
    if args.train_per_class is not None and args.train_per_class < 1:
        p.error(f"--train_per_class must be >= 1, got {args.train_per_class}")
    n_train, n_val = prepare(args.out, parse_digits(args.digits), args.val_fraction,
                             train_per_class=args.train_per_class)
    print(f"wrote {n_train} training and {n_val} validation images to {args.out}")


if __name__ == "__main__":
    main()
