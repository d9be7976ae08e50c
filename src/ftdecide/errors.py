"""The one error type the CLI turns into a single line on stderr and exit code 2."""


class InputError(Exception):
    """Bad input: an unknown name, an impossible number, a broken file. The message is one line that
    names what is wrong (with ``file:line:column`` for files)."""
