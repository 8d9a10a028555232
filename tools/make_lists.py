"""Write fixed, stratified train/val lists for an ImageFolder dataset (one sub-folder per class).

  python tools/make_lists.py DIR --val_ratio 0.1 [--seed 0] [--out DIR] [--force]

Classes are the sorted sub-folder names of DIR (the order training uses when TRAIN.file_list is
empty), labels 0..N-1. Each class is shuffled with --seed and round(n * val_ratio) of its images
go to validation (at least one when the class has two or more images and val_ratio > 0).

Writes to OUT (default DIR):
  train_list.txt, val_list.txt   ``relative/path label`` per line, paths relative to DIR
  label_list.txt                 ``id name`` per line (read by evaluation and tools/infer.py)
and prints the recipe lines to use them (data_dir stays DIR).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

import numpy as np  # noqa: E402

from ppcls.data.dataset import DatasetError, scan_image_folder  # noqa: E402

OUTPUTS = ("train_list.txt", "val_list.txt", "label_list.txt")


def split_lists(data_dir, val_ratio, seed=0):
    """-> (train lines, val lines, class names, per-class (n_train, n_val))."""
    if not 0.0 <= val_ratio < 1.0:
        raise DatasetError(f"--val_ratio must be in [0, 1), got {val_ratio}")
    samples, classes = scan_image_folder(data_dir)
    for name in classes:
        if name != name.strip() or any(c in name for c in "\t\r\n"):
            raise DatasetError(f"{data_dir}: class folder {name!r} has leading/trailing blanks "
                               f"or tabs/newlines; rename it")
    rng = np.random.RandomState(seed)
    train, val, counts = [], [], []
    for label in range(len(classes)):
        paths = [os.path.relpath(p, data_dir).replace(os.sep, "/")
                 for p, lab in samples if lab == label]
        bad = [p for p in paths if any(c in p for c in "\t\r\n") or "  " in p or p != p.strip()]
        if bad:
            raise DatasetError(f"{data_dir}: {len(bad)} file name(s) with tabs, newlines, double "
                               f"or edge blanks cannot be listed as `path label`, e.g. {bad[0]!r}")
        if not paths:
            raise DatasetError(f"{data_dir}/{classes[label]}: no images")
        order = rng.permutation(len(paths))
        n_val = int(round(len(paths) * val_ratio))
        if val_ratio > 0 and n_val == 0 and len(paths) >= 2:
            n_val = 1
        n_val = min(n_val, len(paths) - 1)            # keep one image to train on
        for rank, i in enumerate(order):
            (val if rank < n_val else train).append(f"{paths[i]} {label}")
        counts.append((len(paths) - n_val, n_val))
    return sorted(train), sorted(val), classes, counts


def write_lists(data_dir, out, val_ratio, seed=0, force=False):
    train, val, classes, counts = split_lists(data_dir, val_ratio, seed)
    os.makedirs(out, exist_ok=True)
    existing = [f for f in OUTPUTS if os.path.exists(os.path.join(out, f))]
    if existing and not force:
        raise DatasetError(f"{out} already has {', '.join(existing)}; pass --force to replace them")
    for name, lines in (("train_list.txt", train), ("val_list.txt", val),
                        ("label_list.txt", [f"{i} {c}" for i, c in enumerate(classes)])):
        tmp = os.path.join(out, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        os.replace(tmp, os.path.join(out, name))
    return train, val, classes, counts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="dataset root with one sub-folder of images per class")
    p.add_argument("--val_ratio", type=float, default=0.1, help="share of each class for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where to write the lists (default: DIR)")
    p.add_argument("--force", action="store_true", help="replace existing lists")
    args = p.parse_args(argv)
    out = args.out or args.dir
    try:
        train, val, classes, counts = write_lists(args.dir, out, args.val_ratio, args.seed, args.force)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    small = [c for c, (nt, nv) in zip(classes, counts) if nv == 0 and args.val_ratio > 0]
    print(f"{len(classes)} classes: {len(train)} training and {len(val)} validation images -> "
          f"{os.path.join(out, 'train_list.txt')}, val_list.txt, label_list.txt")
    if small:
        print(f"warning: {len(small)} class(es) with a single image have none in validation: "
              f"{', '.join(small[:5])}", file=sys.stderr)
    d = args.dir.rstrip("/") + "/"
    print("recipe:\n"
          f"  classes_num: {len(classes)}\n  total_images: {len(train)}\n"
          f"  TRAIN: {{data_dir: {d}, file_list: {os.path.join(out, 'train_list.txt')}}}\n"
          f"  VALID: {{data_dir: {d}, file_list: {os.path.join(out, 'val_list.txt')}, "
          f"label_list: {os.path.join(out, 'label_list.txt')}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
