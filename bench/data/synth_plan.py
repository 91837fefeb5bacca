"""The plan of the synthetic collection: patients, studies, labels, readers, votes.

Everything is drawn from one seeded generator and :class:`SeedIds` (UIDs and MD.ai-style ids
derived from the seed), so one seed always gives the same plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np

from bench.data.synth_phantom import LESION_LABELS, random_lesions

UID_ROOT = "1.2.826.0.1.3680043.10.474"
BASE_DATE = dt.date(2020, 3, 2)


class SeedIds:
    """Seed-derived UIDs (RSNA root, site code for numeric sites) and MD.ai-style ids."""

    def __init__(self, seed: int):
        self.seed = seed

    def _digest(self, parts) -> int:
        text = "|".join(str(p) for p in (self.seed, *parts))
        return int(hashlib.sha256(text.encode()).hexdigest(), 16)

    def uid(self, site: str, *parts) -> str:
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


def plan_1c(rng, studies: list[dict]) -> None:
    appearances = spread(
        len(studies), {"typical": 0.4, "indeterminate": 0.25, "atypical": 0.15, "negative": 0.2}
    )
    rng.shuffle(appearances)
    grades = spread(len(studies), {"mild": 0.4, "moderate": 0.35, "severe": 0.25})
    rng.shuffle(grades)
    order = ["negative", "atypical", "indeterminate", "typical"]
    for j, study in enumerate(studies):
        study["description"] = {"419639": "XR CHEST 1 VIEW AP", "440808": "CHEST 1V"}.get(study["site"], "")
        appearance = appearances[j]
        if j == 3 and appearance == "negative":
            appearance = "typical"
        grade = "" if appearance == "negative" else grades[j]
        votes = [[appearance, grade] for _ in range(3)]
        if j == 2:  # three-way appearance tie -> combined "indeterminate" (lower median)
            appearance = "indeterminate"
            grade = grade or "mild"
            votes = [["typical", grade], ["indeterminate", grade], ["atypical", grade]]
        elif j == 3:  # three-way grade tie -> combined "moderate"
            grade = "moderate"
            votes = [[appearance, "mild"], [appearance, "moderate"], [appearance, "severe"]]
        elif j == 4:  # only two readers, who disagree -> tie, lower of the two on the scale
            other = order[(order.index(appearance) + 1) % 4]
            votes = [[appearance, grade], [other, grade if other != "negative" else ""]]
            appearance = min(appearance, other, key=order.index)
            grade = grade if appearance != "negative" else ""
        elif j % 5 == 0:  # one dissenting reader
            other = order[(order.index(appearance) + 2) % 4]
            votes[2] = [other, "" if other == "negative" else (grade or "mild")]
        study["appearance"], study["grade"], study["votes"] = appearance, grade, votes
        study["changed_mind"] = j == 6
