"""Evaluating an entry in a challenge phase: the phase's rules enforced, every attempt in the ledger.

:func:`evaluate_in_phase` checks the phase (its pinned split still hashes as the challenge says,
the window is open, the team has attempts left), records a refusal with its reason, or runs
:func:`bench.pipeline.evaluate.evaluate` on the phase's split and records the stored run, or
the failure. :func:`withdraw` and :func:`choose` record a team's decisions. Nothing here edits
or deletes a ledger line.
"""

import os
from datetime import datetime

from bench.challenges import Event, Ledger, check_attempt, load_challenge, utc_now
from bench.errors import BenchError, ChallengeError
from bench.pipeline.evaluate import EvaluateReport, evaluate
from bench.runners.submission import load_submission
from bench.splits.pinned import load_split
from bench.store import EntryId
from bench.tasks import load_task


def evaluate_in_phase(
    challenge_file: str | os.PathLike,
    phase_id: str,
    submission: str | os.PathLike,
    *,
    root: str | os.PathLike,
    results: str | os.PathLike,
    team: str | None = None,
    entry: str | None = None,
    runner: str = "docker",
    now: datetime | None = None,
    **options,
) -> EvaluateReport:
    """Evaluate ``submission`` as (team, entry) in phase ``phase_id`` of a challenge.

    Raises
    ------
    ChallengeError
        The attempt is refused (window, limits, split); the refusal is in the ledger.
    BenchError
        The submission could not be evaluated; recorded as ``failed``, not counted.
    """
    challenge = load_challenge(challenge_file)
    phase = challenge.phase(phase_id)
    loaded = load_submission(submission, team=team, entry=entry)
    who = EntryId(loaded.team, loaded.name)
    ledger = Ledger(results)
    now = now or utc_now()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = check_attempt(challenge, phase, who.team, ledger.events(challenge.name, phase.id), now,
                           entry=who.name)
    pinned = load_split(challenge.task, phase.split_name).sha256
    if reason is None and pinned != phase.split_sha256:
        reason = (
            f"the pinned split {challenge.task}/{phase.split_name} hashes to {pinned}, not the "
            f"{phase.split_sha256} phase {phase.id} pins; the split file changed"
        )
    if reason is not None:
        ledger.append(Event(stamp, challenge.name, phase.id, who.team, who.name, "refused", reason))
        raise ChallengeError(f"refused: {reason}. The attempt is recorded in {ledger.path}.")
    try:
        report = evaluate(
            submission,
            load_task(challenge.task),
            root=root,
            team=who.team,
            entry=who.name,
            split=phase.split,
            name=phase.split_name,
            results=results,
            runner=runner,
            **options,
        )
    except BenchError as error:
        ledger.append(Event(stamp, challenge.name, phase.id, who.team, who.name, "failed", str(error)[:500]))
        raise
    ledger.append(
        Event(stamp, challenge.name, phase.id, who.team, who.name, "scored", run_id=report.stored.run_id)
    )
    return report


def withdraw(
    challenge_file: str | os.PathLike,
    phase_id: str,
    *,
    team: str,
    entry: str,
    results: str | os.PathLike,
    reason: str = "",
    now: datetime | None = None,
) -> Event:
    """Record that (team, entry) is withdrawn from the phase; counted_runs then counts none of its runs."""
    return _record(challenge_file, phase_id, team, entry, results, "withdrawn", reason=reason, now=now)


def choose(
    challenge_file: str | os.PathLike,
    phase_id: str,
    *,
    team: str,
    entry: str,
    run_id: str,
    results: str | os.PathLike,
    now: datetime | None = None,
) -> Event:
    """Record the run a team chose to count (phases with ``counts: chosen``)."""
    challenge = load_challenge(challenge_file)
    scored = {
        e.run_id
        for e in Ledger(results).events(challenge.name, phase_id)
        if e.event == "scored" and e.entry_id == (team, entry)
    }
    if run_id not in scored:
        raise ChallengeError(
            f"run {run_id!r} is not a scored run of {team} / {entry} in phase {phase_id}; "
            f"its scored runs: {sorted(scored) or 'none'}."
        )
    return _record(challenge_file, phase_id, team, entry, results, "chosen", run_id=run_id, now=now)


def _record(challenge_file, phase_id, team, entry, results, kind, *, reason="", run_id="", now=None) -> Event:
    challenge = load_challenge(challenge_file)
    challenge.phase(phase_id)
    stamp = (now or utc_now()).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Ledger(results).append(Event(stamp, challenge.name, phase_id, team, entry, kind, reason, run_id))
