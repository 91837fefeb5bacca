"""The plan of the synthetic collection: patients, studies, labels, readers, votes.

Everything is drawn from one seeded generator and :class:`SeedIds` (UIDs and MD.ai-style ids
derived from the seed), so one seed always gives the same plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np

from bench.data.synth_phantom import LESION_LABELS, random_lesions
from bench.tasks import APPEARANCE_ORDER, GRADE_ORDER

UID_ROOT = "1.2.826.0.1.3680043.10.474"
BASE_DATE = dt.date(2020, 3, 2)


#: Sites whose real UIDs are short counters after the site code (``...474.440808.569``,
#: ``...474.660042.25678``): the first counter value per site is drawn from these ranges.
COUNTER_SITES = {"440808": (100, 400), "660042": (10000, 50000)}


class SeedIds:
    """Seed-derived UIDs (RSNA root, site code for numeric sites) and MD.ai-style ids.

    Sites in :data:`COUNTER_SITES` get consecutive counters, as the real ones do; the same
    ``parts`` always give the same UID.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._counted: dict[tuple, str] = {}
        self._next: dict[str, int] = {}

    def _digest(self, parts) -> int:
        text = "|".join(str(p) for p in (self.seed, *parts))
        return int(hashlib.sha256(text.encode()).hexdigest(), 16)

    def uid(self, site: str, *parts) -> str:
        if site in COUNTER_SITES:
            key = (site, *parts)
            if key not in self._counted:
                low, span = COUNTER_SITES[site]
                counter = self._next.get(site, low + self._digest((site,)) % span)
                self._next[site] = counter + 1
                self._counted[key] = f"{UID_ROOT}.{site}.{counter}"
            return self._counted[key]
        number = self._digest(parts) % (9 * 10**29) + 10**29
        return f"{UID_ROOT}.{site}.{number}" if site.isdigit() else f"{UID_ROOT}.{number}"

    def short(self, prefix: str, *parts) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        number, chars = self._digest(parts), []
        for _ in range(8):
            number, rest = divmod(number, len(alphabet))
            chars.append(alphabet[rest])
        return f"{prefix}_{''.join(chars)}"


def spread(n: int, fractions: dict[str, float]) -> list[str]:
    """n values with the given fractions, at least one of each when n allows."""
    counts = {k: max(1 if n >= len(fractions) else 0, int(round(f * n))) for k, f in fractions.items()}
    first = next(iter(counts))
    counts[first] += n - sum(counts.values())
    return [k for k, c in counts.items() for _ in range(c)]


def plan_studies(
    rng: np.random.Generator, ids: SeedIds, collection: str, sites: list[str], n: int
) -> list[dict]:
    n_double = max(1, n // 6) if n >= 2 else 0
    numbers = rng.choice(np.arange(1, 999_999), size=n - n_double, replace=False)
    tag = collection[-2:]
    studies = []
    for i, number in enumerate(numbers):
        site = sites[i % len(sites)]
        mrn = f"{site}-{int(number):06d}"
        patient = {
            "patient_id": f"{collection}-{mrn}",
            "mrn": mrn,
            "site": site,
            "collection": collection,
            "sex": "MF"[(i // len(sites)) % 2],
            "age": round(float(rng.uniform(25, 90)), 2),
        }
        first = BASE_DATE + dt.timedelta(days=int(rng.integers(0, 300)))
        visits = [first] + ([first + dt.timedelta(days=int(rng.integers(14, 60)))] if i < n_double else [])
        for v, date in enumerate(visits):
            study = dict(
                patient,
                date_obj=date,
                date=date.strftime("%Y%m%d"),
                age=round(patient["age"] + (date - first).days / 365.25, 2),
            )
            study["study_uid"] = ids.uid(site, tag, "study", mrn, v)
            studies.append(study)
    return studies


def plan_storage(rng: np.random.Generator, studies: list[dict]) -> None:
    """Give each CT study a pixel storage convention, independently of its label and site.

    ``signed``: int16 with RescaleIntercept 0; otherwise uint16 with intercept -1024, which
    clips air at -1024 HU. Half of each (collection, site) group gets each convention, in a
    seeded random order, so neither "HU below -1024 exists" nor the site says which collection
    (= COVID label) a study comes from.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for study in studies:
        groups.setdefault((study["collection"], study["site"]), []).append(study)
    for key in sorted(groups):
        members = groups[key]
        conventions = [k % 2 == 0 for k in range(len(members))]
        rng.shuffle(conventions)
        for study, signed in zip(members, conventions, strict=True):
            study["signed"] = bool(signed)


def plan_1a(rng, studies: list[dict], readers: list[tuple[str, str]]) -> None:
    appearances = spread(
        len(studies), {"typical": 0.5, "indeterminate": 0.2, "atypical": 0.15, "negative": 0.15}
    )
    rng.shuffle(appearances)
    counter = 0
    for i, study in enumerate(studies):
        study["description"] = "CT CHEST WITHOUT CONTRAST"
        study["appearance"] = appearances[i]
        study["readers"] = [readers[i % len(readers)]]
        if i % 3 == 1:
            study["readers"].append(readers[(i + 1) % len(readers)])
        study["shuffled"] = i == 1
        labels = []
        if appearances[i] != "negative":
            for _ in range(int(rng.integers(1, 4))):
                if counter < len(LESION_LABELS):
                    labels.append(LESION_LABELS[counter])
                else:
                    labels.append(
                        "Infectious opacity" if rng.random() < 0.6 else str(rng.choice(LESION_LABELS))
                    )
                counter += 1
        study["lesions"] = random_lesions(rng, len(labels), labels)


READERS_1C = ("Tiger", "Bear", "Dragon")
#: A fourth reader group with a few studies (the real export's "Lion").
EXTRA_READER_1C = "Lion"
ADJUDICATION_GROUP = "Adjudication"
DEFAULT_GROUP = "Default group"
#: Reading scenarios of the first 1c studies (so that even ``tiny`` holds all of them); later
#: studies are ``dissent`` every fifth, else ``unanimous``.
SCENARIOS_1C = (
    "unanimous",
    "default_group",
    "adjudicated",
    "grade_tie",
    "two_readers",
    "invalid_majority",
    "changed_mind",
    "fourth_reader",
    "invalid_adjudicator",
    "minority_invalid",
    "invalid_only",
    "dissent",
    "adjudicated_grade",
)


def _votes(appearance: str, grade: str) -> list[tuple[str, str]]:
    return [("appearance", appearance)] + ([("grade", grade)] if grade else [])


def plan_1c(rng, studies: list[dict]) -> None:
    """Each 1c study's labels per label group (in creation order) and what the protocol gives.

    ``study["labels"]``: group -> list of ``(family, value)`` with family ``appearance``,
    ``grade`` or ``invalid``; ``study["expected"]``: the reading protocol's result
    (appearance, grade and their outcomes, n_readers, invalid_flags, excluded).
    """
    appearances = spread(
        len(studies), {"typical": 0.4, "indeterminate": 0.25, "atypical": 0.15, "negative": 0.2}
    )
    rng.shuffle(appearances)
    grades = spread(len(studies), {"mild": 0.4, "moderate": 0.35, "severe": 0.25})
    rng.shuffle(grades)
    order = list(APPEARANCE_ORDER)
    for j, study in enumerate(studies):
        study["description"] = {"419639": "XR CHEST 1 VIEW AP", "440808": "CHEST 1V"}.get(study["site"], "")
        scenario = SCENARIOS_1C[j] if j < len(SCENARIOS_1C) else ("dissent" if j % 5 == 0 else "unanimous")
        appearance = appearances[j]
        if scenario in ("grade_tie", "adjudicated_grade") and appearance == "negative":
            appearance = "typical"
        grade = "" if appearance == "negative" else grades[j]
        labels = {reader: _votes(appearance, grade) for reader in READERS_1C}
        expected = {"appearance": appearance, "appearance_outcome": "majority", "grade": grade,
                    "grade_outcome": "majority" if grade else "none", "n_readers": 3, "invalid_flags": 0,
                    "excluded": False}
        other = order[(order.index(appearance) + 2) % 4]
        if scenario == "default_group":  # the Default group's two users label otherwise: not counted
            labels[DEFAULT_GROUP] = [("appearance", other), ("appearance", other)]
        elif scenario == "dissent":
            labels["Dragon"] = _votes(other, "" if other == "negative" else (grade or "mild"))
        elif scenario == "adjudicated":  # three readers split three ways, none as the adjudicator
            split = [value for value in order if value != appearance]
            for reader, value in zip(READERS_1C, split, strict=True):
                labels[reader] = _votes(value, "" if value == "negative" else "mild")
            labels[ADJUDICATION_GROUP] = _votes(appearance, grade)
            expected.update(appearance_outcome="adjudicated",
                            grade_outcome="adjudicated" if grade else "none")
        elif scenario == "grade_tie":  # mild / moderate / severe: the lower median, moderate
            for reader, value in zip(READERS_1C, GRADE_ORDER, strict=True):
                labels[reader] = _votes(appearance, value)
            expected.update(grade="moderate", grade_outcome="tie")
        elif scenario == "two_readers":  # two readers who disagree: a tie, the lower of the two
            del labels["Dragon"]
            second = order[(order.index(appearance) + 1) % 4]
            graded = grade or "mild"
            labels["Tiger"] = _votes(appearance, "" if appearance == "negative" else graded)
            labels["Bear"] = _votes(second, "" if second == "negative" else graded)
            lower = min(appearance, second, key=order.index)
            expected.update(appearance=lower, appearance_outcome="tie", n_readers=2,
                            grade="" if lower == "negative" else graded,
                            grade_outcome="none" if lower == "negative" else "majority")
        elif scenario == "invalid_majority":
            labels["Tiger"] = [("invalid", "")]
            labels["Bear"] = [("invalid", "")]
            expected.update(excluded=True, invalid_flags=2)
        elif scenario == "changed_mind":  # the latest label by createdAt counts
            labels["Tiger"] = [("appearance", other), *labels["Tiger"]]
        elif scenario == "fourth_reader":
            labels[EXTRA_READER_1C] = _votes(appearance, grade)
            labels["Dragon"] = _votes(other, "" if other == "negative" else (grade or "mild"))
            labels[DEFAULT_GROUP] = [("appearance", other)]
            expected.update(n_readers=4)
        elif scenario == "invalid_adjudicator":
            labels[ADJUDICATION_GROUP] = [("invalid", "")]
            expected.update(excluded=True)
        elif scenario == "minority_invalid":
            labels["Dragon"] = [("invalid", "")]
            expected.update(invalid_flags=1)
        elif scenario == "invalid_only":
            labels = {reader: [("invalid", "")] for reader in READERS_1C}
            expected.update(excluded=True, invalid_flags=3)
        elif scenario == "adjudicated_grade":  # readers split the grade, the adjudicator grades only
            for reader, value in zip(READERS_1C, ("mild", "severe", "moderate"), strict=True):
                labels[reader] = _votes(appearance, value)
            adjudicated = "severe" if grade != "severe" else "mild"
            labels[ADJUDICATION_GROUP] = [("grade", adjudicated)]
            expected.update(grade=adjudicated, grade_outcome="adjudicated")
        if expected["excluded"]:
            expected.update(appearance="", grade="", appearance_outcome="none", grade_outcome="none")
        study["scenario"], study["labels"], study["expected"] = scenario, labels, expected
        study["grade"] = expected["grade"] if not expected["excluded"] else grade
