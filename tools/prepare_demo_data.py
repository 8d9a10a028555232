"""Write the built-in demo dataset: the 1,797 8x8 handwritten digits that scikit-learn ships
(no download), as 32x32 grayscale PNGs with a fixed stratified split.

  python tools/prepare_demo_data.py [--out dataset/digits] [--digits 0-9]

Writes OUT/images/<digit>/<n>.png, OUT/train_list.txt, OUT/val_list.txt (``path label``) and
OUT/label_list.txt. ``--digits 0-4`` keeps a subset (labels renumbered from 0), used by the
fine-tuning demo.
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


def prepare(out, digits=tuple(range(10)), val_fraction=0.2, size=32, seed=0):
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="dataset/digits")
    p.add_argument("--digits", default="0-9", help="which digits, e.g. 0-9, 0-4 or 5,6,7")
    p.add_argument("--val_fraction", type=float, default=0.2)
    args = p.parse_args()
    n_train, n_val = prepare(args.out, parse_digits(args.digits), args.val_fraction)
    print(f"wrote {n_train} training and {n_val} validation images to {args.out}")


if __name__ == "__main__":
    main()
