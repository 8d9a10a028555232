"""The base of every error that means "bad input": the command-line tools print its message as
one ``error: ...`` line and exit with code 2, with no traceback (ppcls.utils.cli)."""


class UserError(Exception):
    """A problem the user fixes (a recipe key, a path, a weights file); the message says how."""


PADDLE_MISSING = ("ppcls needs PaddlePaddle, which is not installed: pip install "
                  "paddlepaddle==3.3.1 (CPU) or paddlepaddle-gpu==3.3.1 (GPU, the CUDA build "
                  "that fits your driver); see README 'Install'")


class PaddleNotInstalledError(UserError, ImportError):
    """``import paddle`` failed: PaddlePaddle is installed separately (CPU or GPU build)."""


def require_paddle():
    """Import paddle, or raise PaddleNotInstalledError with the install command."""
    try:
        import paddle  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "paddle":
            raise
        raise PaddleNotInstalledError(PADDLE_MISSING) from None
