"""The one error type the CLI turns into a single line on stderr and exit code 2, and the helper that
keeps any text on one line."""


class InputError(Exception):
    """Bad input: an unknown name, an impossible number, a broken file. The message is one line that
    names what is wrong (with ``file:line:column`` for files)."""


def one_line(text: str) -> str:
    """``text`` on one line: line breaks become spaces and other control characters (which user input
    may carry into a message or a generated file) are escaped, so nothing can start a new line."""
    flat = " ".join(text.splitlines())
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in flat).strip()
