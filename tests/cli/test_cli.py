"""The CLI's one error path: a BenchError becomes its message and exit code, never a traceback."""

import typer
from typer.testing import CliRunner

from bench.cli import _BenchGroup
from bench.errors import TaskSpecError


def _app() -> typer.Typer:
    app = typer.Typer(cls=_BenchGroup)

    @app.command()
    def fail(name: str) -> None:
        raise TaskSpecError(f"task {name!r}: no task.yaml [here]")

    @app.command()
    def noted() -> None:
        error = TaskSpecError("scoring failed")
        error.add_note("while scoring case case-0001")
        raise error

    @app.command()
    def ok() -> None:
        print("fine")

    return app


def test_bench_error_becomes_message_and_exit_code():
    result = CliRunner().invoke(_app(), ["fail", "x"])
    assert result.exit_code == 2
    assert "error: task 'x': no task.yaml [here]" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, TaskSpecError)


def test_success_is_untouched():
    result = CliRunner().invoke(_app(), ["ok"])
    assert result.exit_code == 0 and "fine" in result.output


def test_bench_help_lists_commands():
    from bench.cli import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "RICORD" in result.output


def test_notes_attached_to_the_error_are_shown():
    result = CliRunner().invoke(_app(), ["noted"])
    assert result.exit_code == 2
    assert "error: scoring failed" in result.output and "while scoring case case-0001" in result.output
