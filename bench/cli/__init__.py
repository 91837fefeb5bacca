"""The `bench` command line: parses arguments, calls one library function, prints.

Every command lives in a module of this package that adds itself to :data:`app`.
The one place that turns a :class:`bench.errors.BenchError` (or an I/O error such as a full
disk, :func:`bench.errors.io_error_message`) into a message and an exit code is
:class:`_BenchGroup`, so commands never catch them themselves.
"""

import logging

import typer
from typer.core import TyperGroup

from bench.cli.progress import console, shown
from bench.errors import BenchError, io_error_message

IO_EXIT_CODE = 74
"""Exit code of a command stopped by an I/O error (EX_IOERR of sysexits.h)."""


class _BenchGroup(TyperGroup):
    """Shows a BenchError as its message on stderr (no traceback) and exits with its code.

    Typer >= 0.29 vendors its own click, so this catches the error and raises ``typer.Exit``
    (public in every Typer version) instead of subclassing a click exception class.
    """

    def get_help_option(self, ctx):
        """Typer's ``--help``, defaulting to False instead of None.

        Typer skips coercing a boolean option only when its value is a bool; a group's ``--help``
        left unset is None, so ``bench score --help`` would build a pydantic adapter for it and
        import pydantic (a third of that command's start-up, benchmarks/bench_startup.py).
        """
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BenchError as error:
            console.print(f"[bold red]error:[/] {shown(error)}", soft_wrap=True)
            for note in getattr(error, "__notes__", ()):
                console.print(f"  {shown(note)}", soft_wrap=True)
            raise typer.Exit(code=error.exit_code) from error
        except OSError as error:  # disk full, permission denied...: a message, never a traceback
            console.print(f"[bold red]error:[/] {shown(io_error_message(error))}", soft_wrap=True)
            raise typer.Exit(code=IO_EXIT_CODE) from error


app = typer.Typer(
    cls=_BenchGroup,
    help="Reproducible evaluation harness for the RSNA MIDRC-RICORD COVID-19 collections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Start-up (benchmarks/bench_startup.py): click's plain help formatter, as typer's rich one
    # imports rich.markdown and markdown-it; and no --install-completion/--show-completion, whose
    # values typer coerces through pydantic before any subcommand's --help is shown.
    rich_markup_mode=None,
    add_completion=False,
)


@app.callback()
def _configure(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _reap_killed_runs()


def _reap_killed_runs() -> None:
    """Before any command: clean up after runs, builds and prepares whose process was killed.

    One listing of the lease folder when nothing is stale; a failure here only warns, it never
    stops the command the user asked for.
    """
    from bench.leases import stale_leases

    try:
        if not stale_leases():
            return
        from bench.runners.gc import reap_stale

        for line in reap_stale():
            console.print(f"[dim]cleanup after a killed run: {shown(line)}[/]", soft_wrap=True)
    except (BenchError, OSError) as error:
        logging.getLogger(__name__).warning("cleanup after killed runs failed: %s", error)


def main() -> None:
    """Console-script entry point."""
    app()


# Command modules register themselves on `app` when imported; keep one import per line.
from bench.cli import challenge  # noqa: E402,F401,I001
from bench.cli import cite  # noqa: E402,F401,I001
from bench.cli import data  # noqa: E402,F401,I001
from bench.cli import export  # noqa: E402,F401,I001
from bench.cli import gc  # noqa: E402,F401,I001
from bench.cli import leaderboard  # noqa: E402,F401,I001
from bench.cli import prepare  # noqa: E402,F401,I001
from bench.cli import report  # noqa: E402,F401,I001
from bench.cli import run  # noqa: E402,F401,I001
from bench.cli import score  # noqa: E402,F401,I001
from bench.cli import splits  # noqa: E402,F401,I001
