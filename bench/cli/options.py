"""Options shared by several commands: who an entry belongs to."""

from typing import Annotated

import typer

Team = Annotated[
    str | None,
    typer.Option(
        "--team",
        help="The entry's team: required for a tarball, an image or a plain predictions folder; "
        "overrides submission.yaml.",
    ),
]
Entry = Annotated[
    str | None,
    typer.Option(
        "--entry",
        help="The entry's name within its team: required for a tarball, an image or a plain "
        "predictions folder; overrides submission.yaml's name.",
    ),
]
