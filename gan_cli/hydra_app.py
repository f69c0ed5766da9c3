"""What every `gan` command's Hydra app shares: user errors as one paragraph, no traceback."""
from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from gan_cli.interrupt import StopNow, exit_code, release_ctrl_c, signal_name
from gan_cli.engine.run_lock import RunFolderBusy, RunLock, is_main_process
from gan_cli.errors import ConfigError, GanCliError
from gan_cli.logging.console import console, print_error
from gan_cli.trust import check_config


def full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def exit_with(e: GanCliError) -> NoReturn:
    """One panel naming what is wrong, exit status 1."""
    print_error(str(e), title=type(e).__name__)
    sys.exit(1)


def report_errors(app: Callable[..., Any]) -> Callable[..., Any]:
    """Print a GanCliError as a panel and exit 1; HYDRA_FULL_ERROR=1 shows the traceback instead."""

    @functools.wraps(app)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            release_ctrl_c()  # a Ctrl-C held while the command started is raised here, then handled below
            return app(*args, **kwargs)
        except GanCliError as e:
            if full_error():
                raise
            exit_with(e)
        except MissingMandatoryValue as e:  # a `???` key left unset, e.g. `gan sample` without ckpt=
            if full_error():
                raise
            key = e.full_key or "a required key"
            exit_with(ConfigError(f"{key} is required: give it on the command line, e.g. `{key}=VALUE` "
                                  f"(`--help` lists every key)."))
        except KeyboardInterrupt as e:
            if full_error():
                raise
            stopped_at_once(e)

    return wrapper


def stopped_at_once(e: KeyboardInterrupt) -> NoReturn:
    """Ctrl-C outside the training loop (start-up), or a second stop signal: one line, the signal's exit code."""
    signum = getattr(e, "signum", signal.SIGINT)
    what = f"a second {signal_name(signum)}" if isinstance(e, StopNow) else signal_name(signum)
    console.print(f"\n[yellow]Stopped at once by {what}: nothing more was saved; a checkpoint written before "
                  f"is kept as it was.[/]", highlight=False)
    sys.exit(exit_code(signum))


def _file_in_the_way(path: Path) -> Path | None:
    """`path` or the first of its parents that exists but is not a folder."""
    for p in [*reversed(path.parents), path]:
        if p.exists() and not p.is_dir():
            return p
    return None


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Create `folder` (and its parents); what stops it, in words, or None when it is a writable folder."""
    path = Path(folder).expanduser()
    blocker = _file_in_the_way(path)
    if blocker is not None:
        what = "is" if blocker == path else f"is inside {blocker}, which is"
        return f"{path} {what} a file, not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{path} cannot be created ({e.strerror or e})"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable ({os.strerror(13)})"
    return None


def ensure_parent(out: Path, key: str = "out") -> None:
    """The folder of an output file, created; a ConfigError naming `key` when it cannot be."""
    problem = folder_problem(out.parent)
    if problem is not None:
        raise ConfigError(f"{key}={out}: cannot write there, {problem}. Choose a path in a folder you can write to.")


def write_error(out: Path, e: OSError, key: str = "out") -> ConfigError:
    """A ConfigError for an OSError while writing `out`."""
    return ConfigError(f"{key}={out}: could not write the file ({e.strerror or e}). "
                       f"Choose a path in a folder you can write to.")


class RunFolderCheck(Callback):
    """Creates the run (or sweep) folder before Hydra does, so that a bad one is one paragraph, not a traceback,
    and takes the run folder's lock before Hydra writes into it (`train` then holds the same lock).

    Hydra makes `hydra.run.dir` in `run_job`, before the task function (and `report_errors`) runs, and
    prints any error there with a stack trace. With HYDRA_FULL_ERROR=1 this does nothing and Hydra's
    own error (with the full trace) follows.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")
        if is_main_process():  # one writer: refused here, before Hydra writes .hydra/ and train.log
            run_dir = Path(str(config.hydra.run.dir))
            run_dir.mkdir(parents=True, exist_ok=True)  # made by _check, unless HYDRA_FULL_ERROR=1 skipped it
            try:
                self.lock = RunLock(run_dir).acquire()  # until on_run_end
            except RunFolderBusy as e:
                exit_with(e)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        if full_error():
            return
        folder = OmegaConf.select(config, key)
        if folder is None:
            return
        problem = folder_problem(str(folder))
        subdir = OmegaConf.select(config, "hydra.output_subdir")
        if problem is None and subdir and key == "hydra.run.dir":
            problem = folder_problem(Path(str(folder)) / str(subdir))
        if problem is not None:
            what = "run" if key == "hydra.run.dir" else "sweep"
            exit_with(ConfigError(f"{key}={folder}: the {what} folder cannot be used: {problem}. "
                                  f"Set {key}=PATH to a folder you can write to (or a path that does not exist yet)."))


def guard_hydra_callbacks() -> None:
    """Check `hydra.callbacks` against gan_cli.trust before Hydra instantiates them.

    Hydra builds its callbacks from the composed config before any app code runs, so an
    experiment YAML could otherwise name code there (`# @package _global_`, `hydra.callbacks`).
    Hydra 1.3 makes every callback in one place, `hydra._internal.callbacks.Callbacks`; this
    wraps its constructor (tested against the pinned Hydra, tests/test_trust.py).
    """
    from hydra._internal import callbacks as hydra_callbacks

    make = hydra_callbacks.Callbacks.__init__
    if getattr(make, "checked_by_gan_cli", False):
        return

    def checked(self: Any, config: DictConfig | None = None, *args: Any, **kwargs: Any) -> None:
        if config is not None:
            try:
                check_config(OmegaConf.select(config, "hydra.callbacks"), "The config", path="hydra.callbacks")
            except GanCliError as e:
                if full_error():
                    raise
                exit_with(e)
        make(self, config, *args, **kwargs)

    checked.checked_by_gan_cli = True  # type: ignore[attr-defined]
    hydra_callbacks.Callbacks.__init__ = checked


def list_groups_from_one_copy() -> None:
    """Make `--help` quick: Hydra 1.3 deep-copies its whole config repository (the structured schema
    included) for every group it lists, about a hundred times per `--help`; list them all from one copy.

    The listing only reads the config sources, which do not change while a process runs.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.object_type import ObjectType

    list_options = ConfigLoaderImpl.get_group_options
    if getattr(list_options, "one_copy", False):
        return

    def get_group_options(self: Any, group_name: str, results_filter: Any = ObjectType.CONFIG,
                          config_name: str | None = None, overrides: list[str] | None = None) -> list[str]:
        copies = self.__dict__.setdefault("_gan_cli_repositories", {})
        key = (config_name, tuple(overrides or ()))
        if key not in copies:
            copies[key] = self._parse_overrides_and_create_caching_repo(config_name, list(key[1]))[1]
        return copies[key].get_group_options(group_name, results_filter)

    get_group_options.one_copy = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.get_group_options = get_group_options


guard_hydra_callbacks()
list_groups_from_one_copy()
