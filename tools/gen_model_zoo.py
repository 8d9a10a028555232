"""Generate the model zoo table from the model registry (nothing typed by hand, nothing cached).

    python tools/gen_model_zoo.py            # print the table
    python tools/gen_model_zoo.py --write    # docs/model_zoo.md + the marked block of README.md
                                             # (and README_cn.md when it has the markers)
    python tools/gen_model_zoo.py --check    # exit 1 with a diff when a file disagrees

Columns: family, model, parameters (M), GMACs at 224x224 (ppcls/analysis/flops.py), the paper's
top-1 (registered with the model), and its config (configs/<Family>/<Model>.yaml when it
exists). The README block sits between the lines
    <!-- model-zoo:start -->
    <!-- model-zoo:end -->
Every model is built and measured on each run (about a minute or two on a 2-core CPU).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

import argparse  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Generate the model zoo table from the registry.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true",
                      help="write docs/model_zoo.md and the README block(s)")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 (with a diff) when docs/model_zoo.md or a README block "
                           "differs from the generated table")
    p.add_argument("--root", default=ROOT, help="repository root (default: this checkout)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ppcls.analysis import model_zoo

    names = model_zoo.registered_in_order()

    def counts_fn(name):
        if not args.quiet:
            print(f"  measuring {name}", file=sys.stderr, flush=True)
        return model_zoo.count_model(name)

    rows = model_zoo.zoo_rows(names, counts_fn, root=args.root)
    if not (args.write or args.check):
        print(model_zoo.render_zoo_block(rows))
        return 0

    status = 0
    updates = model_zoo.zoo_updates(rows, args.root)
    if "README.md" not in updates:
        print("README.md: not found (only docs/model_zoo.md handled)", file=sys.stderr)
    for rel, (current, expected) in updates.items():
        path = os.path.join(args.root, rel)
        if expected is None:
            print(f"{rel}: no {model_zoo.ZOO_START} ... {model_zoo.ZOO_END} markers; add them where "
                  "the table belongs", file=sys.stderr)
            status = 1
            continue
        if current == expected:
            print(f"{rel}: up to date")
            continue
        if args.check:
            print(f"{rel}: differs from the generated table "
                  f"(run `python tools/gen_model_zoo.py --write`)", file=sys.stderr)
            sys.stdout.write(model_zoo.unified_diff(current, expected, rel))
            status = 1
        else:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(expected)
            print(f"{rel}: written")
    return status


if __name__ == "__main__":
    sys.exit(main())
