"""What every `gan` command's Hydra app shares: user errors as one paragraph, no traceback."""
from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

from gan_cli.errors import GanCliError
from gan_cli.logging.console import print_error


def report_errors(app: Callable[..., Any]) -> Callable[..., Any]:
    """Print a GanCliError as a panel and exit 1; HYDRA_FULL_ERROR=1 shows the traceback instead."""

    @functools.wraps(app)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return app(*args, **kwargs)
        except GanCliError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print_error(str(e), title=type(e).__name__)
            sys.exit(1)

    return wrapper
