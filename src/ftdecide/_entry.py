"""The console script and ``python -m ftdecide``: import the command line, run it, exit with its status.

Kept apart from :mod:`ftdecide.cli` so that Ctrl-C while typer, rich and pydantic are still being
imported ends quietly (exit 130) instead of with a traceback from the import.
"""

import sys


def run() -> None:
    try:
        from .cli import finish, main

        code = finish(main())
    except KeyboardInterrupt:
        sys.stderr.write("ftdecide: interrupted\n")
        code = 130
    sys.exit(code)
