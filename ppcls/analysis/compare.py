"""Comparative experiments: every variant x seed of one recipe, each a ``tools/train.py`` run.

A *variant* is a name and ``-o`` overrides (``se:ARCHITECTURE.params.attention=se``); a
``--grid`` crosses lists of values into variants. The plan is seed-major (every variant with
seed 0, then seed 1...), so a comparison stopped half-way is still balanced. Each run is a
subprocess ``python tools/train.py -c RECIPE -o cpu_threads=T -o TRAIN.shuffle_seed=S <variant
overrides> -o seed=S -o model_save_dir=OUT/<variant>/seed<S> -o resume=auto`` with its own
folder (the seed sets the initialisation, the augmentation and the batch order):

    OUT/<variant>/seed<S>/train.log     the trainer's output, every attempt appended
    OUT/<variant>/seed<S>/run.json      what the run is (variant, overrides, seed, the resolved
                                        recipe's hash) and its attempts (exit code, seconds)
    OUT/<variant>/seed<S>/done.json     written once an attempt exited 0 with the final epoch in
                                        its log: the parsed metrics and per-epoch curves
    OUT/<variant>/seed<S>/<ARCH>/       the trainer's checkpoints (epoch ones removed when the
                                        run is done, unless keep_checkpoints; best_model kept)

Resuming: a run with ``done.json`` is skipped (its files are not touched); any other run is
started again with ``resume=auto``, so a killed one continues from its newest complete epoch
checkpoint. A folder made for a different recipe or overrides is refused, not mixed in. The
runs die with this process (Linux: PR_SET_PDEATHSIG), and one comparison at a time may use an
output folder (a lock file).
"""
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import product

from ..utils.device import available_cores
from ..utils.errors import UserError
from . import compare_runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_SCRIPT = os.path.join(ROOT, "tools", "train.py")
# Keys the runner sets per run; they do not change what a run computes, so they are left out
# of the recipe hash that identifies a run folder.
RUNNER_KEYS = ("seed", "model_save_dir", "resume", "checkpoints", "cpu_threads", "_source")
# TRAIN.shuffle_seed is set per run too: hashed without it (see resolve_variants).


class CompareError(UserError, ValueError):
    """A bad --variant/--grid, or an output folder that does not belong to this comparison."""


# ----------------------------------------------------------------------------- the plan
def split_top_level(text, sep=","):
    """Split on ``sep`` outside brackets and quotes: ``k=[3,5,7,7],x=1`` -> 2 parts."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def folder_name(name):
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "variant"


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple = ()

    @property
    def folder(self):
        return folder_name(self.name)


def _check_override(text, where):
    key, eq, _ = text.partition("=")
    if not eq or not key.strip():
        raise CompareError(f"{where}: {text!r} is not key=value (e.g. ARCHITECTURE.params.attention=se)")
    return text


def parse_variant(text):
    """``NAME:k=v[,k=v...]`` (or just ``NAME``: the recipe as it is) -> Variant."""
    name, colon, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise CompareError(f"--variant {text!r}: give it a name, e.g. --variant se:"
                           f"ARCHITECTURE.params.attention=se")
    overrides = [p for p in split_top_level(rest)] if colon and rest.strip() else []
    return Variant(name, tuple(_check_override(o, f"--variant {name}") for o in overrides))


def parse_grid(items):
    """``["LEARNING_RATE.params.lr=0.05,0.1", "TRAIN.batch_size=32,64"]`` -> one Variant per
    combination (the first value of every key first), named ``lr=0.05,batch_size=32``."""
    axes = []
    for item in items:
        key, eq, values = item.partition("=")
        key = key.strip()
        vals = [v for v in split_top_level(values) if v] if eq else []
        if not key or not vals:
            raise CompareError(f"--grid {item!r}: expected key=value1,value2,... "
                               f"(e.g. --grid LEARNING_RATE.params.lr=0.05,0.1)")
        axes.append((key, vals))
    keys = [k for k, _ in axes]
    lasts = [k.rsplit(".", 1)[-1] for k in keys]
    short = [last if lasts.count(last) == 1 else key for key, last in zip(keys, lasts)]
    return [Variant(",".join(f"{s}={v}" for s, v in zip(short, combo)),
                    tuple(f"{k}={v}" for k, v in zip(keys, combo)))
            for combo in product(*[vals for _, vals in axes])]


def combine(variants, grid):
    """Variants x grid points (either may be empty); at least one variant (the recipe)."""
    if not variants and not grid:
        return [Variant("recipe")]
    if not grid:
        out = list(variants)
    elif not variants:
        out = list(grid)
    else:
        out = [Variant(f"{v.name}+{g.name}", v.overrides + g.overrides)
               for v in variants for g in grid]
    names, folders = {}, {}
    for v in out:
        if v.name in names or v.folder in folders:
            raise CompareError(f"two variants named {v.name!r} (folder {v.folder}); names must "
                               f"be unique")
        names[v.name] = folders[v.folder] = v
    return out


@dataclass
class Run:
    variant: Variant
    seed: int
    dir: str

    @property
    def label(self):
        return f"{self.variant.name} seed {self.seed}"

    def path(self, name):
        return os.path.join(self.dir, name)


def make_plan(variants, seeds, out):
    """Seed-major list of Runs."""
    return [Run(v, s, os.path.join(out, v.folder, f"seed{s}")) for s in seeds for v in variants]


# ----------------------------------------------------------------------------- variant facts
def resolve_variants(recipe, variants):
    """Load the recipe with each variant's overrides (a bad key fails here, before any run),
    build its model and count it: {name: {config_sha256, arch, epochs, params, gmacs}}."""
    from ..engine.recipe import load_config, model_from_config
    from .flops import count_macs, count_params, skip_random_init
    facts = {}
    for v in variants:
        try:
            cfg = load_config(recipe, list(v.overrides))
        except UserError as e:
            raise CompareError(f"variant {v.name}: {e}") from None
        with skip_random_init():
            try:
                model = model_from_config(cfg)
            except UserError as e:
                raise CompareError(f"variant {v.name}: {e}") from None
        if cfg["mode"] != "train" or cfg["TRAIN"] is None:
            raise CompareError(f"{recipe}: a comparison trains; set mode: train and a TRAIN section")
        c, h, w = cfg["image_shape"]
        plain = {k: val for k, val in cfg.items() if k not in RUNNER_KEYS}
        plain["TRAIN"] = {k: val for k, val in (cfg["TRAIN"] or {}).items() if k != "shuffle_seed"}
        digest = hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()
        facts[v.name] = {"config_sha256": digest, "arch": cfg["ARCHITECTURE"]["name"],
                         "epochs": cfg["epochs"], "validate": bool(cfg["validate"]),
                         "params": count_params(model),
                         "gmacs": count_macs(model, h, c) / 1e9 if h == w else None,
                         "image_shape": [c, h, w]}
    return facts


# ----------------------------------------------------------------------------- files
def write_json(path, data):
    """Atomically (temporary file + rename): a kill leaves the old file or the new one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _check_owner(run, facts, record, what):
    """Refuse a run folder made by another recipe, variant definition or seed."""
    if record is None:
        return
    mine = {"overrides": list(run.variant.overrides), "seed": run.seed,
            "config_sha256": facts["config_sha256"]}
    theirs = {k: record.get(k) for k in mine}
    if theirs != mine:
        diff = ", ".join(k for k in mine if theirs[k] != mine[k])
        raise CompareError(f"{run.path(what)} belongs to another comparison (different {diff}: "
                           f"{theirs['overrides']} seed {theirs['seed']}); use another --out or "
                           f"remove {run.dir}")


def is_done(run, facts):
    done = read_json(run.path("done.json"))
    _check_owner(run, facts, done, "done.json")
    _check_owner(run, facts, read_json(run.path("run.json")), "run.json")
    return done is not None


class OutputLock:
    """One comparison per output folder: an flock held while this process lives."""

    def __init__(self, out):
        os.makedirs(out, exist_ok=True)
        self.path = os.path.join(out, ".compare.lock")
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "?"
            self.file.close()
            raise CompareError(f"{out}: another tools/compare.py (pid {holder}) is using this "
                               f"folder; wait for it or choose another --out") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def release(self):
        self.file.close()


# ----------------------------------------------------------------------------- running
def _die_with_parent():
    """In the child before exec: SIGKILL when the comparison dies (Linux), so a killed
    comparison leaves no trainer running into the folder the next one resumes."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)    # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def run_command(recipe, run, threads, train_cmd=None):
    cmd = list(train_cmd or [sys.executable, TRAIN_SCRIPT]) + ["-c", recipe]
    # The seed also picks the batch order (TRAIN.shuffle_seed), so each seed is a replicate of
    # the whole training randomness; set before the variant's overrides, which may pin it.
    overrides = [f"cpu_threads={threads}", f"TRAIN.shuffle_seed={run.seed}",
                 *run.variant.overrides, f"seed={run.seed}", f"model_save_dir={run.dir}",
                 "resume=auto"]
    for o in overrides:
        cmd += ["-o", o]
    return cmd


@dataclass
class Active:
    run: Run
    proc: subprocess.Popen
    log: object
    start: float
    record: dict = field(default_factory=dict)


def _start(run, recipe, facts, threads, train_cmd, echo, counter=""):
    os.makedirs(run.dir, exist_ok=True)
    record = read_json(run.path("run.json")) or {
        "variant": run.variant.name, "overrides": list(run.variant.overrides), "seed": run.seed,
        "config_sha256": facts["config_sha256"], "recipe": os.path.abspath(recipe),
        "attempts": []}
    cmd = run_command(recipe, run, threads, train_cmd)
    record["attempts"].append({"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "command": shlex.join(cmd)})
    write_json(run.path("run.json"), record)
    log = open(run.path("train.log"), "a", encoding="utf-8")
    log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} INFO: {compare_runs.ATTEMPT_MARK} "
              f"{len(record['attempts'])} of {run.label}: {shlex.join(cmd)}\n")
    log.flush()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=_die_with_parent)
    echo(f"{counter}start {run.label}: {run.path('train.log')}")
    return Active(run, proc, log, time.time(), record)


def _finish(active, facts, keep_checkpoints, echo):
    """Record the attempt; write done.json when it succeeded. True when the run is done."""
    run, code = active.run, active.proc.returncode
    active.log.close()
    seconds = time.time() - active.start
    active.record["attempts"][-1].update(returncode=code, seconds=round(seconds, 1))
    write_json(run.path("run.json"), active.record)
    if code == 2:               # the tools' "bad input" exit: every other run would fail too
        raise CompareError(f"{run.label} stopped on an input error (exit code 2); its log "
                           f"{run.path('train.log')} ends with:\n"
                           + compare_runs.tail(run.path("train.log")))
    if code != 0:
        echo(f"FAILED {run.label} (exit code {code}) after {seconds:.0f} s; its log: "
             f"{run.path('train.log')}\n" + compare_runs.tail(run.path("train.log")))
        return False
    parsed = compare_runs.parse_run_log(run.path("train.log"))
    result = compare_runs.run_result(parsed, facts["epochs"], facts["validate"])
    if result is None:
        echo(f"FAILED {run.label}: exited 0 but its log has no END line for the last epoch "
             f"({facts['epochs'] - 1}); see {run.path('train.log')}")
        return False
    total = sum(a.get("seconds", 0) for a in active.record["attempts"])
    write_json(run.path("done.json"), {
        "variant": run.variant.name, "overrides": list(run.variant.overrides), "seed": run.seed,
        "config_sha256": facts["config_sha256"], "seconds": round(total, 1),
        "attempts": len(active.record["attempts"]), **result})
    if not keep_checkpoints:
        compare_runs.remove_epoch_checkpoints(os.path.join(run.dir, facts["arch"]))
    m = result["metrics"]
    echo(f"done {run.label} in {total:.0f} s" + (
        f": best top-1 {m['best_top1']:.4f}, final {m['final_top1']:.4f}"
        if m.get("best_top1") is not None else ""))
    return True


def run_plan(plan, recipe, facts, workers=1, threads=None, train_cmd=None,
             keep_checkpoints=False, echo=print, poll=0.2):
    """Run every unfinished run of ``plan``, ``workers`` at a time; returns the failed Runs."""
    threads = threads or max(1, available_cores() // workers)
    todo = [r for r in plan if not is_done(r, facts[r.variant.name])]
    echo(f"{len(plan)} runs, {len(plan) - len(todo)} already done; {workers} at a time, "
         f"{threads} CPU thread(s) each")
    failed, active, started, total = [], [], 0, len(todo)
    try:
        while todo or active:
            while todo and len(active) < workers:
                run = todo.pop(0)
                started += 1
                active.append(_start(run, recipe, facts[run.variant.name], threads, train_cmd,
                                     echo, f"[{started}/{total}] "))
            time.sleep(poll)
            for a in [a for a in active if a.proc.poll() is not None]:
                active.remove(a)
                if not _finish(a, facts[a.run.variant.name], keep_checkpoints, echo):
                    failed.append(a.run)
    finally:
        for a in active:            # interrupted (Ctrl-C, an error here): stop our trainers
            a.proc.terminate()
        for a in active:
            try:
                a.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                a.proc.kill()
            a.log.close()
    return failed
