"""Compare variants of a recipe over several seeds: mean, spread and 95% intervals.

  python tools/compare.py -c configs/quick_start/compare_attention_digits.yaml \\
      --variant none --variant se:ARCHITECTURE.params.attention=se \\
      --variant eca:ARCHITECTURE.params.attention=eca --seeds 3 --out output/compare_attention
  python tools/compare.py -c RECIPE --grid LEARNING_RATE.params.lr=0.02,0.05,0.1 --seeds 3
  python tools/compare.py -c RECIPE --variant a --variant b:OPTIMIZER.function=SGD --seeds 5 --workers 2

Each variant x seed is one `tools/train.py` run in OUT/<variant>/seed<S>/ (train.log, run.json,
done.json). Run the same command again to resume: finished runs are skipped, an interrupted one
continues from its newest epoch checkpoint. --report only rewrites the summary of what is done.
Writes OUT/summary.md, summary.csv, differences.csv, compare_top1.png, compare_train_loss.png.
The first variant is the baseline of the differences.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ppcls.utils.quiet import quiet_paddle  # noqa: E402  (imports no paddle)

quiet_paddle()         # Paddle's UserWarnings and glog lines off; PPCLS_VERBOSE=1 keeps them

from ppcls.utils.cpu_env import prepare_cpu_env  # noqa: E402  (imports no paddle)

prepare_cpu_env()      # MKL's AVX2 kernels on AMD CPUs (the parent counts MACs with paddle)

import argparse  # noqa: E402

from ppcls.utils.cli import run_cli  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("-c", "--config", required=True, help="the recipe every variant starts from")
    p.add_argument("--variant", action="append", default=[], metavar="NAME[:k=v,k=v...]",
                   help="a variant: a name and -o overrides (commas inside [] are kept); repeat")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=v1,v2,...",
                   help="sweep a key over values; several --grid are crossed (and crossed with "
                        "the --variant list)")
    p.add_argument("--seeds", type=int, default=3, help="runs per variant (default 3)")
    p.add_argument("--first_seed", "--first-seed", type=int, default=0,
                   help="seeds are first_seed ... first_seed + seeds - 1 (default 0)")
    p.add_argument("--workers", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--threads", type=int, default=0,
                   help="cpu_threads of each run (default: cores // workers)")
    p.add_argument("--out", default=None,
                   help="output folder (default output/compare_<recipe name>)")
    p.add_argument("--keep_checkpoints", "--keep-checkpoints", action="store_true",
                   help="keep the epoch checkpoints of finished runs (default: only best_model)")
    p.add_argument("--report", action="store_true",
                   help="run nothing; write the summary of the finished runs")
    p.add_argument("--dry_run", "--dry-run", action="store_true",
                   help="print the runs and their commands, run nothing")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.workers < 1 or args.threads < 0:
        p.error("--seeds and --workers must be >= 1, --threads >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    from ppcls.analysis import compare as cmp
    from ppcls.analysis.compare_report import write_report

    variants = cmp.combine([cmp.parse_variant(v) for v in args.variant],
                           cmp.parse_grid(args.grid) if args.grid else [])
    name = os.path.splitext(os.path.basename(args.config))[0]
    out = args.out or os.path.join("output", f"compare_{name}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    plan = cmp.make_plan(variants, seeds, out)
    facts = cmp.resolve_variants(args.config, variants)
    if args.dry_run:
        threads = args.threads or max(1, cmp.available_cores() // args.workers)
        for run in plan:
            state = "done" if cmp.is_done(run, facts[run.variant.name]) else "to run"
            print(f"{run.label} ({state}): {' '.join(cmp.run_command(args.config, run, threads))}")
        return 0
    lock = cmp.OutputLock(out)
    try:
        failed = [] if args.report else cmp.run_plan(
            plan, args.config, facts, workers=args.workers, threads=args.threads or None,
            keep_checkpoints=args.keep_checkpoints, echo=lambda s: print(s, flush=True))
        note = (f"`{args.config}`, {len(variants)} variant(s) x seeds {seeds[0]}..{seeds[-1]}; "
                f"mean ± sample standard deviation over the seeds [min, max].")
        text, paths = write_report(out, variants, facts, plan, title=f"Comparison: {name}",
                                   note=note)
    finally:
        lock.release()
    print("\n" + text)
    print("wrote " + "\nwrote ".join(paths))
    if failed:
        print(f"error: {len(failed)} run(s) failed: " + ", ".join(r.label for r in failed)
              + "; fix the cause and run the same command again (finished runs are skipped)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main) or 0)
