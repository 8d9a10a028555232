"""Check a file list and its images before a long run: every problem, with line numbers, in one pass.

  python tools/check_dataset.py dataset/ILSVRC2012/train_list.txt dataset/ILSVRC2012/ --classes_num 1000

Errors: malformed lines, labels that are not integers or outside [0, classes_num), missing,
empty, truncated or undecodable files. Notes: files that decode but are odd (a PNG named .jpg,
grayscale, CMYK, 16-bit, alpha), grouped by kind; training converts them to 8-bit RGB. Each file is decoded once
with the training decoder and nothing else is run. Exit code: 0 clean (notes allowed),
1 errors found, 2 bad arguments.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them


def main():
    p = argparse.ArgumentParser(description="Check a classification file list and its images.",
                                epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file_list", help="'relative/path label' per line")
    p.add_argument("data_dir", help="folder the paths are relative to")
    p.add_argument("--classes_num", type=int, default=None,
                   help="labels must be in [0, classes_num)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="decoding threads (default: min(8, cores))")
    p.add_argument("--all_notes", action="store_true",
                   help="list every file of each note kind (default: the first 5); errors are "
                        "always listed one per line")
    args = p.parse_args()
    if not os.path.isfile(args.file_list):
        print(f"error: file list not found: {args.file_list}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.data_dir):
        print(f"error: data_dir not found: {args.data_dir}", file=sys.stderr)
        return 2
    if args.classes_num is not None and args.classes_num < 1:
        print(f"error: --classes_num must be >= 1, got {args.classes_num}", file=sys.stderr)
        return 2
    from ppcls.data.dataset_check import check_dataset, format_report
    report = check_dataset(args.file_list, args.data_dir, args.classes_num, args.workers)
    for line in format_report(report, args.file_list, None if args.all_notes else 5):
        print(line)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
