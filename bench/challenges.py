"""Challenges: phases with a pinned split, windows and submission limits, and an append-only ledger.

A challenge is ``challenges/<name>.yaml`` (:class:`Challenge`): one task, and phases (for example a
public validation phase and a hidden test phase), each with its pinned split (name, part and the
split file's sha256, so an edited split file is refused), the UTC window it accepts entries in,
limits per team per UTC day and in total, which run counts for an entry (``latest``, ``best`` by the
task's primary metric, or ``chosen`` by the team) and whether scores show at once or only after the
phase closes.

Every attempt goes into the ledger ``<results>/ledger.jsonl``, refused ones included: one JSON
object per line, appended under an exclusive lock and fsynced, never rewritten. Events:
``refused`` (with the reason), ``scored`` (with the stored run's id), ``failed`` (the harness or
the submission could not produce a result, with the reason), ``withdrawn`` and ``chosen``.
Limits count ``scored`` attempts only: a refused attempt or one the harness failed does not use
up a team's quota (the request behind grand-challenge issue #543).
"""

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from bench.errors import ChallengeError
from bench.io import read_yaml_model

LEDGER = "ledger.jsonl"
EVENTS = ("refused", "scored", "failed", "withdrawn", "chosen")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhaseLimits(_Model):
    """Scored attempts allowed per team: per UTC calendar day and over the whole phase."""

    per_day: Annotated[int, Field(ge=1)]
    total: Annotated[int, Field(ge=1)]


class Phase(_Model):
    """One phase: its pinned split, window, limits, counted run and score visibility."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
    title: str
    split_name: str
    split: Literal["train", "validation", "test"]
    split_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    opens: AwareDatetime
    closes: AwareDatetime
    limits: PhaseLimits
    counts: Literal["latest", "best", "chosen"] = "latest"
    scores: Literal["immediately", "after_close"] = "immediately"

    @model_validator(mode="after")
    def _window(self) -> "Phase":
        if self.closes <= self.opens:
            raise ValueError(f"phase {self.id!r} closes ({self.closes}) before it opens ({self.opens})")
        return self

    def scores_visible(self, now: datetime) -> bool:
        return self.scores == "immediately" or now >= self.closes


class Challenge(_Model):
    """The model of ``challenges/<name>.yaml``."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    title: str
    task: str
    phases: Annotated[tuple[Phase, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> "Challenge":
        ids = [phase.id for phase in self.phases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"phase ids repeat: {ids}")
        return self

    def phase(self, phase_id: str) -> Phase:
        for phase in self.phases:
            if phase.id == phase_id:
                return phase
        raise ChallengeError(
            f"challenge {self.name}: no phase {phase_id!r}; its phases are {[p.id for p in self.phases]}."
        )


def load_challenge(path: str | os.PathLike) -> Challenge:
    """Read and validate a challenge file (every invalid field listed)."""
    return read_yaml_model(
        Path(path), Challenge, error=ChallengeError, what="challenge fields", docs="docs/challenges.md"
    )


@dataclass(frozen=True)
class Event:
    """One ledger line."""

    at: str
    challenge: str
    phase: str
    team: str
    entry: str
    event: str
    reason: str = ""
    run_id: str = ""

    @property
    def entry_id(self) -> tuple[str, str]:
        """(team, entry), as a stored run's ``(team, name)``."""
        return (self.team, self.entry)


class Ledger:
    """The append-only ledger of one results store (``<results>/ledger.jsonl``)."""

    def __init__(self, results: str | os.PathLike):
        self.path = Path(results) / LEDGER

    def append(self, event: Event) -> Event:
        """Append one event under an exclusive lock, flushed to disk before returning."""
        if event.event not in EVENTS:
            raise ChallengeError(f"unknown ledger event {event.event!r}; one of {EVENTS}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event.__dict__, sort_keys=True, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return event

    def events(self, challenge: str | None = None, phase: str | None = None) -> list[Event]:
        """Every event in order (of ``challenge`` / ``phase`` when given)."""
        if not self.path.is_file():
            return []
        found = []
        # one event a line, split at "\n" alone: splitlines() also splits at U+2028, U+0085 and
        # others that json.dumps leaves raw, so a team named with one broke the ledger for everyone
        lines = self.path.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            try:
                event = Event(**json.loads(line))
            except (ValueError, TypeError) as error:
                raise ChallengeError(
                    f"{self.path}:{number}: not a ledger event ({error}); the ledger is "
                    "append-only, restore it from a backup."
                ) from error
            if (challenge is None or event.challenge == challenge) and (
                phase is None or event.phase == phase
            ):
                found.append(event)
        return found


def check_attempt(
    challenge: Challenge,
    phase: Phase,
    team: str,
    events: Iterable[Event],
    now: datetime,
    *,
    entry: str | None = None,
) -> str | None:
    """Why an attempt by ``team`` (with ``entry``) now would be refused, or None when it may run.

    Checks the phase window, that the entry was not withdrawn from the phase (a withdrawal is
    final: its runs never count again), then the team's scored attempts on the same UTC day and
    in total.
    """
    events = [e for e in events if e.phase == phase.id]
    if now < phase.opens:
        return f"phase {phase.id} of {challenge.name} opens at {phase.opens.isoformat()}; it is {_iso(now)}"
    if now >= phase.closes:
        return f"phase {phase.id} of {challenge.name} closed at {phase.closes.isoformat()}; it is {_iso(now)}"
    withdrawn = [e for e in events if e.event == "withdrawn" and e.entry_id == (team, entry)]
    if withdrawn:
        return (
            f"{team} / {entry} was withdrawn from phase {phase.id} at {withdrawn[0].at}; a withdrawn "
            "entry's runs never count again, so enter under another entry name"
        )
    scored = [e for e in events if e.team == team and e.event == "scored"]
    today = [e for e in scored if e.at[:10] == _iso(now)[:10]]
    if len(today) >= phase.limits.per_day:
        return (
            f"team {team!r} has used its {phase.limits.per_day} scored attempt(s) of "
            f"{_iso(now)[:10]} (UTC) in phase {phase.id}; try again tomorrow"
        )
    if len(scored) >= phase.limits.total:
        return f"team {team!r} has used all {phase.limits.total} scored attempts of phase {phase.id}"
    return None


def counted_runs(
    challenge: Challenge,
    phase: Phase,
    runs: Iterable,
    events: Iterable[Event],
    *,
    direction: str,
    primary: str,
) -> list:
    """The run that counts for each entry of ``phase`` that is not withdrawn, by the phase's rule.

    ``runs`` are stored runs (:class:`bench.store.StoredRun`: ``team``, ``name``, ``run_id``,
    ``scores``).

    Only runs the ledger recorded as ``scored`` in this phase count, and only when stored on the
    challenge's task and the phase's pinned split (name, part and sha256: a run scored before the
    split file changed does not count on the new split). Runs are in the order the ledger recorded
    them scored. ``latest``: the last scored; ``best``: the best primary value (``direction``
    ``higher`` or ``lower``; ties: the earlier);
    ``chosen``: the run the team chose last (none chosen: the entry is not on the board).
    """
    events = [e for e in events if e.challenge == challenge.name and e.phase == phase.id]
    order = {(e.entry_id, e.run_id): n for n, e in enumerate(events) if e.event == "scored"}
    withdrawn = {e.entry_id for e in events if e.event == "withdrawn"}
    chosen = {e.entry_id: e.run_id for e in events if e.event == "chosen"}
    per_entry: dict[tuple[str, str], list] = {}
    for run in sorted(runs, key=lambda r: order.get(((r.team, r.name), r.run_id), -1)):
        key = (run.team, run.name)
        if (key, run.run_id) in order and key not in withdrawn and on_phase_split(challenge, phase, run):
            per_entry.setdefault(key, []).append(run)
    counted = []
    for entry, candidates in sorted(per_entry.items()):
        if phase.counts == "latest":
            counted.append(candidates[-1])
        elif phase.counts == "best":
            counted.append(
                max(candidates, key=lambda r: (_goodness(r, primary, direction), -candidates.index(r)))
            )
        elif entry in chosen:
            counted.extend(r for r in candidates if r.run_id == chosen[entry])
    return counted


def on_phase_split(challenge: Challenge, phase: Phase, run) -> bool:
    """Whether the stored ``run`` was scored on the challenge's task and the phase's pinned split."""
    return (run.task, run.split_name, run.split, run.split_sha256) == (
        challenge.task, phase.split_name, phase.split, phase.split_sha256
    )


def _goodness(run, primary: str, direction: str) -> float:
    """The primary value oriented so that larger is better; a missing value is the worst."""
    value = (run.scores["metrics"].get(primary) or {}).get("value")
    if not isinstance(value, int | float) or value != value:
        return float("-inf")
    return float(value) if direction == "higher" else -float(value)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
