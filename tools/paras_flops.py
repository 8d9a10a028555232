"""Parameters and FLOPs of registered models, as the papers count them.

    python tools/paras_flops.py -a ECA_ResNet50                       # 25.56M / 4.089G (MACs)
    python tools/paras_flops.py -a ECA_ResNet50 --counter thop --units binary   # 24.37M / 3.86G
    python tools/paras_flops.py -a all                               # every registered model
    python tools/paras_flops.py -a 'RLA_*' --counter thop --units binary

Counters (ppcls/analysis/flops.py): ``macs`` = multiply-adds of conv, transposed conv (on its input
grid) and linear layers, what the papers call FLOPs; ``thop-2019`` / ``thop-2020`` = what the
thop builds behind the ECA-Net / RLA-Net tables counted; ``thop`` = the build of the model's
own paper (ECA-Net: thop-2019, everything else: thop-2020). Binary units (2^20, 2^30) are the
ECA/RLA tables' units, printed as those tables round them.
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
        description="Parameters and FLOPs (MACs or thop counts) of registered models.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("-a", "--arch", required=True,
                   help="registered model name, a shell pattern ('ECA_*'), or 'all'")
    p.add_argument("--input_size", "--input-size", type=int, default=224,
                   help="square input side (default 224)")
    p.add_argument("--units", choices=("decimal", "binary"), default="decimal",
                   help="decimal: M = 10^6, G = 10^9; binary: M = 2^20, G = 2^30 as the ECA "
                        "and RLA tables (default decimal)")
    p.add_argument("--counter", choices=("macs", "thop", "thop-2019", "thop-2020"),
                   default="macs", help="what to count (default macs)")
    p.add_argument("--class_dim", "--class-dim", type=int, default=1000,
                   help="classifier outputs (default 1000)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list the layer types a thop counter counted as zero")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ppcls.modeling import list_models
    from ppcls.analysis import model_zoo

    pattern = "*" if args.arch.lower() == "all" else args.arch
    if any(ch in pattern for ch in "*?["):
        names = model_zoo.registered_in_order(pattern)
        if not names:
            print(f"no registered model matches {args.arch!r}; registered: "
                  f"{', '.join(list_models())}", file=sys.stderr)
            return 2
    else:
        try:
            from ppcls.modeling import get_model_factory
            get_model_factory(pattern)
        except KeyError as e:
            print(e.args[0], file=sys.stderr)
            return 2
        names = [pattern]

    unit_note = ("decimal: M = 10^6, G = 10^9" if args.units == "decimal" else
                 "binary: M = 2^20, G = 2^30, rounded as the ECA/RLA tables")
    print(f"counter: {args.counter} | units: {unit_note} | input: 3x{args.input_size}x"
          f"{args.input_size} | class_dim: {args.class_dim}")
    print(model_zoo.format_row())
    for row in model_zoo.count_rows(names, args.counter, args.units, args.input_size,
                                args.class_dim):
        print(model_zoo.format_row(row), flush=True)
        if args.verbose and row["counter"] != "macs" and row["zero_types"]:
            print(f"    {row['counter']} counts as zero: {', '.join(row['zero_types'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
