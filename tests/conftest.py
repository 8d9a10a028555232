import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("FLAGS_call_stack_level", "0")

from ppcls.utils.cpu_env import prepare_cpu_env  # noqa: E402  (imports no paddle)

prepare_cpu_env()      # as the tools do: MKL's AVX2 kernels on AMD CPUs, set before paddle loads

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """The demo dataset (scikit-learn digits as PNGs), written once per test session."""
    from tools.prepare_demo_data import prepare
    out = tmp_path_factory.mktemp("digits")
    prepare(str(out))
    return str(out)


def write_list(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def tiny_cfg(digits_dir, tmp_path):
    """A fast recipe on a slice of the digits: ResNet18 at 32x32, no workers, seeded."""
    def make(n_train=128, n_val=50, extra=()):
        with open(os.path.join(digits_dir, "train_list.txt")) as f:
            train = [l.strip() for l in f if l.strip()]
        with open(os.path.join(digits_dir, "val_list.txt")) as f:
            val = [l.strip() for l in f if l.strip()]
        # spread the slice over all classes (the lists are sorted by class)
        train = train[:: max(1, len(train) // n_train)][:n_train]
        val = val[:: max(1, len(val) // n_val)][:n_val]
        tl = write_list(tmp_path / "train.txt", train)
        vl = write_list(tmp_path / "val.txt", val)
        from ppcls.engine.recipe import load_config
        overrides = [f"TRAIN.data_dir={digits_dir}", f"TRAIN.file_list={tl}",
                     f"VALID.data_dir={digits_dir}", f"VALID.file_list={vl}",
                     f"VALID.label_list={os.path.join(digits_dir, 'label_list.txt')}",
                     "TRAIN.num_workers=0", "VALID.num_workers=0", "ARCHITECTURE.name=ResNet18",
                     "TRAIN.batch_size=32", "VALID.batch_size=32", "epochs=2", "seed=0",
                     "LEARNING_RATE.params.lr=0.02", "LEARNING_RATE.params.warmup_epoch=0",
                     f"model_save_dir={tmp_path / 'output'}", "print_interval=1", "cpu_threads=1",
                     *extra]
        return load_config(os.path.join(ROOT, "configs/quick_start/DLA46_c_digits.yaml"), overrides)
    return make


class _RunsCode:
    """Unpickling it runs ``touch pwned`` in the working directory."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def write_code_running_pdparams(path):
    """A .pdparams pickle that would run a shell command when loaded without a check; the tests
    chdir to tmp_path and assert that no ``pwned`` file appears."""
    import pickle
    import numpy as np
    with open(path, "wb") as f:
        pickle.dump({"fc.weight": np.zeros(2, np.float32), "x": _RunsCode()}, f, protocol=2)
    return str(path)
