"""The `bench` command line: parses arguments, calls one library function, prints.

Every command lives in a module of this package that adds itself to :data:`app`.
The one place that turns a :class:`bench.errors.BenchError` into a message and an
exit code is :class:`_BenchGroup`, so commands never catch it themselves.
"""

import logging

import click
import typer
from typer.core import TyperGroup

from bench.errors import BenchError


class _UserError(click.ClickException):
    """A BenchError shown as a plain message (no traceback) with its exit code."""

    def __init__(self, error: BenchError):
        super().__init__(str(error))
        self.exit_code = error.exit_code


class _BenchGroup(TyperGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BenchError as error:
            raise _UserError(error) from error


app = typer.Typer(
    cls=_BenchGroup,
    help="Reproducible evaluation harness for the RSNA MIDRC-RICORD COVID-19 collections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _configure(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Console-script entry point."""
    app()


# Command modules register themselves on `app` when imported; keep one import per line.
from bench.cli import data  # noqa: E402,F401
from bench.cli import prepare  # noqa: E402,F401
from bench.cli import splits  # noqa: E402,F401
