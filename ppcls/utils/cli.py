"""Shared pieces of the command-line tools: the -c/-o parser and clean error exits."""
import argparse
import sys

from .errors import PADDLE_MISSING, UserError


def user_errors():
    """Exceptions that mean 'bad input': printed as one clear message, exit code 2."""
    return (UserError, FileNotFoundError)


def config_parser(description, epilog=""):
    p = argparse.ArgumentParser(description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="recipe YAML, e.g. configs/DLA/DLA60.yaml")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; repeatable; nested keys with dots "
                        "(-o TRAIN.batch_size=64 -o epochs=10). Values are YAML scalars.")
    return p


def run_cli(main):
    """Call ``main()``; user errors become 'error: ...' on stderr and exit code 2."""
    try:
        return main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - filtered just below
        if isinstance(e, user_errors()):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        if isinstance(e, ModuleNotFoundError) and e.name == "paddle":
            print(f"error: {PADDLE_MISSING}", file=sys.stderr)
            sys.exit(2)
        raise
