"""Plot training curves from training logs or metrics.csv: acc_plot.png and loss_plot.png.

    python tools/eval_visual.py --log-dir log                      # paddle.distributed.launch logs
    python tools/eval_visual.py --log-dir output/DLA60/metrics.csv # the run's per-epoch metrics
    python tools/eval_visual.py --log-dir output/                  # every model_save_dir/<ARCH>
    python tools/eval_visual.py --log-dir output/train.log --out figures
    python tools/eval_visual.py --log-dir runs/                    # one run per sub-folder
    python tools/eval_visual.py --log-dir runA/log --log-dir runB/log   # runs side by side

acc_plot.png: validation top-1 and top-5 per epoch; loss_plot.png: train loss per epoch (mean of
the epoch's step losses) with validation loss, and the learning rate per epoch. Per-worker logs
(workerlog.N) are read from workerlog.0; a metrics.csv (written by training into
model_save_dir/<ARCH>/, one row per epoch, resumes included) gives the same curves. See
ppcls/analysis/log_parse.py for the accepted lines.
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
        description="Plot accuracy / loss / learning-rate curves from training logs.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--log-dir", "--log_dir", dest="log_dirs", action="append", required=True,
                   metavar="PATH", help="log file, metrics.csv, launch log folder (workerlog.N), "
                   "folder of log files or of run folders; repeat to compare runs")
    p.add_argument("--out", default=None,
                   help="folder for acc_plot.png and loss_plot.png (default: the first --log-dir "
                        "if it is a folder, else the folder of that file)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ppcls.analysis.log_parse import LogParseError, load_runs, plot_runs, summarize

    try:
        runs = load_runs(args.log_dirs)
    except (LogParseError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    first = args.log_dirs[0]
    out = args.out or (first if os.path.isdir(first) else os.path.dirname(first) or ".")
    acc, loss = plot_runs(runs, out)
    print(summarize(runs))
    print(f"wrote {acc}\nwrote {loss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
