"""Helpers every command shares: logging set-up, error-to-exit-code mapping, -v/-q."""

from __future__ import annotations

import difflib
import functools
import logging
import signal
import sys
import threading
import warnings

import click

from swc_rs.errors import SwcError, SwcWarning
from swc_rs.workers import freeze_at_exit

log = logging.getLogger("swc_rs")


class _NearestOption:
    """Mixin: "No such option" names the one nearest valid option.

    Click lists every close option in alphabetical order (``--zone``: "one of: '--model',
    '--zones'"); this keeps only the closest by :func:`difflib.get_close_matches`, so the
    message reads "No such option: --zone Did you mean --zones?".
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as error:
            names = [opt for param in self.get_params(ctx) for opt in (*param.opts, *param.secondary_opts)
                     if opt.startswith("-")]
            error.possibilities = difflib.get_close_matches(error.option_name, names, n=1, cutoff=0.5)
            raise


class SuggestingCommand(_NearestOption, click.Command):
    """A command whose unknown options suggest the nearest valid one."""


class SuggestingGroup(_NearestOption, click.Group):
    """A command group whose options and commands suggest the nearest valid one
    (click suggests commands itself: "No such command 'detct'. Did you mean 'detect'?")."""

    command_class = SuggestingCommand


SuggestingGroup.group_class = SuggestingGroup


def configure_logging(verbosity: int) -> None:
    """Map -v/-q counts to log levels; warnings from swc-rs go through logging."""
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO}.get(
        max(verbosity, -2), logging.DEBUG
    )
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    else:  # cron, systemd, CI: every line carries its time
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("swc_rs")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SwcWarning):
            root.warning("%s", message)
        else:
            logging.getLogger("py.warnings").debug("%s:%s: %s", filename, lineno, message)

    warnings.showwarning = show
    warnings.simplefilter("always", SwcWarning)


def handle_errors(func):
    """Turn swc-rs errors into one readable line on stderr and their exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        freeze_at_exit()
        previous = interrupt_on_terminate()
        try:
            return func(*args, **kwargs)
        except SwcError as err:
            click.echo(f"Error: {err.message}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; no output was written.", err=True)
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except Exception as err:  # an unexpected failure: a bug, not bad input
            log.debug("traceback of the unexpected failure", exc_info=True)
            click.echo(
                f"Unexpected failure ({type(err).__name__}: {err}). No output was written. "
                "Run again with -v to see the traceback and report it.",
                err=True,
            )
            if log.isEnabledFor(logging.DEBUG):
                import traceback

                traceback.print_exc()
            sys.exit(1)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    return wrapper


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_terminate() -> dict:
    """SIGTERM (and SIGBREAK on Windows) stop a command as Ctrl-C does: the temporary
    outputs are removed, "Interrupted; no output was written." and exit code 130. What
    sends it: ``kill PID``, systemd, the QGIS plugin's Cancel. Returns the handlers it
    replaced (signal → handler), restored when the command returns."""
    previous: dict = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for name in ("SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, _terminated)
    return previous


def verbosity_options(func):
    """-v/-q flags shared by every command."""
    func = click.option("-v", "--verbose", count=True, help="More log output (repeatable).")(func)
    func = click.option("-q", "--quiet", count=True, help="Less log output (repeatable).")(func)
    return func
