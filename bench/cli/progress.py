"""Turns the library's progress callbacks into a rich progress bar.

Library functions that take a while accept ``progress: Callable[[int, int, str], None]``
called with (done, total, description); they never print. The CLI passes
:func:`progress_bar`'s callback.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

from bench.text import printable

ProgressCallback = Callable[[int, int, str], None]

console = Console(stderr=True)


def shown(value: object) -> str:
    """``value`` as text to interpolate into a rich string: data, never markup or terminal control.

    Every value the CLI prints that it did not write itself (case ids, reasons, file names,
    submission names, paths) goes through here: control characters become visible escapes
    (:func:`bench.text.printable`) and rich markup is escaped, so ``[/x]`` or ``[link=...]``
    from a submission prints as those characters.
    """
    return escape(printable(str(value)))


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressCallback]:
    """Yield a callback that drives one rich progress bar titled ``label``.

    The bar stays invisible until the first update, so a command that fails early prints
    its error message alone, not after an empty "0/?" bar. rich.progress is imported here, not
    at module level, so ``bench --help`` does not pay for it.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    state: dict = {}

    def update(done: int, total: int, description: str = "") -> None:
        if not state:  # started on the first update only
            state["bar"] = Progress(*columns, console=console, transient=False)
            state["bar"].start()
            state["task"] = state["bar"].add_task(label, total=None)
        state["bar"].update(state["task"], completed=done, total=total,
                            description=shown(description or label))

    try:
        yield update
    finally:
        if state:
            state["bar"].stop()
