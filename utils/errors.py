"""One-line user errors for the command-line scripts."""
from __future__ import annotations

import os
import sys
from typing import Callable


class UserError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main``; turn ``UserError`` into a one-line message and exit 2."""
    prog = os.path.basename(sys.argv[0])
    try:
        status = main()
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
