"""The base of every error that means "bad input": the command-line tools print its message as
one ``error: ...`` line and exit with code 2, with no traceback (ppcls.utils.cli)."""


class UserError(Exception):
    """A problem the user fixes (a recipe key, a path, a weights file); the message says how."""
