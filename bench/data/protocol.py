"""The RICORD reading protocol: the readers' study labels -> one label per study, in one place.

RICORD 1c was read by three radiologists, each working in their own MD.ai *label group*
(each group defines its own label ids carrying the same names); disputed studies went to an
Adjudication group; a "Default group" holds the project's own trial labels (two users, no
reader). The protocol a task declares (:class:`bench.tasks.ReadingProtocol`, ``reading:`` in
``task.yaml``) says which groups adjudicate, which are no reader, the label vocabulary and the
tie rule; this module applies it, and nothing else in the harness combines study labels.

Rules, per study:

1. Each label group votes once per label family (appearance, grade): with its latest label of
   that family by ``createdAt`` (then file order). A group's ``Invalid Study`` label is a flag.
2. Groups named in ``non_reader_groups`` do not vote; their labels stay in the reader table
   (role ``non_reader``) so that they are reported, not counted. Groups in
   ``adjudication_groups`` are adjudicators; every other group is a reader. ``n_readers``
   counts the reader groups with any label on the study.
3. Invalid: a study that an adjudicator flags, or that more than half of its readers flag, is
   left out (``excluded`` names why). A minority of readers' flags is recorded
   (``invalid_flags``) and the study is labelled as usual.
4. Each family: an adjudicator's vote decides where there is one (outcome ``adjudicated``);
   else the readers' most frequent vote (``majority``); a tied top count is broken by the tie
   rule (``tie``); no vote at all gives no label (``none``).
5. Tie rule ``lower_median``: among the tied values, the lower median on the family's ordinal
   scale (negative < atypical < indeterminate < typical; mild < moderate < severe), so a
   three-way typical/indeterminate/atypical split is indeterminate and mild-vs-severe is mild.
6. A study whose appearance is ``negative`` has no grade (the grade scale grades opacities).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.tasks import APPEARANCE_ORDER, GRADE_ORDER, ReadingProtocol

ROLES = ("reader", "adjudicator", "non_reader")
FAMILIES = ("appearance", "grade")
OUTCOMES = ("adjudicated", "majority", "tie", "none")

#: Columns of the reader table (one row per study and label group).
READER_COLUMNS = (
    "study_uid",
    "group_id",
    "group_name",
    "role",
    "users",
    "appearance",
    "grade",
    "invalid",
    "n_labels",
)
#: Columns of the protocol's result (one row per study).
STUDY_COLUMNS = (
    "study_uid",
    "appearance",
    "appearance_outcome",
    "grade",
    "grade_outcome",
    "n_readers",
    "invalid_flags",
    "excluded",
)


def group_roles(groups: pd.DataFrame, protocol: ReadingProtocol) -> dict[str, str]:
    """Label group id -> role (``reader``, ``adjudicator``, ``non_reader``), by group name.

    ``groups``: rows with ``group_id`` and ``group_name`` (e.g. an export's label table).
    """
    roles = {}
    for group_id, name in groups[["group_id", "group_name"]].drop_duplicates().itertuples(index=False):
        if name in protocol.adjudication_groups:
            roles[group_id] = "adjudicator"
        elif name in protocol.non_reader_groups:
            roles[group_id] = "non_reader"
        else:
            roles[group_id] = "reader"
    return roles


def reader_labels(annotations: pd.DataFrame, protocol: ReadingProtocol) -> pd.DataFrame:
    """One row per (study, label group) with the group's vote per family (:data:`READER_COLUMNS`).

    ``annotations``: the export's annotation table (``study_uid``, ``group_id``,
    ``group_name``, ``label_name``, ``scope``, ``reader``, ``created_at``). Every group with
    any annotation on the study has a row (``n_labels`` counts them, polygons included); only
    STUDY- and SERIES-scope labels vote. Label names are matched exactly as the file spells
    them against the protocol's vocabulary; other study labels (findings such as
    ``Emphysema``) do not vote.
    """
    if annotations.empty:
        return pd.DataFrame(columns=list(READER_COLUMNS))
    table = annotations.assign(order=np.arange(len(annotations)))
    table = table.sort_values(["created_at", "order"], kind="stable")
    vocabulary = protocol.vocabulary()
    study_level = table.scope.isin(["STUDY", "SERIES"])
    family = table.label_name.map(lambda name: vocabulary.get(name, ("", ""))[0])
    table["family"] = family.where(study_level, "")
    table["value"] = table.label_name.map(lambda name: vocabulary.get(name, ("", ""))[1])
    table["flag"] = study_level & (table.label_name == protocol.invalid_label)
    keys = ["study_uid", "group_id"]
    out = table.groupby(keys, sort=True).agg(
        group_name=("group_name", "first"),
        users=("reader", lambda users: ";".join(sorted(set(users)))),
        n_labels=("label_name", "size"),
        invalid=("flag", "any"),
    )
    for family in FAMILIES:
        votes = table[table.family == family].groupby(keys, sort=True)["value"].last()
        out[family] = votes.reindex(out.index).fillna("")
    out = out.reset_index()
    out["role"] = out.group_id.map(group_roles(table, protocol))
    out["invalid"] = out["invalid"].astype(bool)
    return out.loc[:, list(READER_COLUMNS)].reset_index(drop=True)


def vote(values: Sequence[str], order: Sequence[str]) -> tuple[str, bool]:
    """The most frequent of ``values`` and whether its count was tied (then the lower median).

    Returns ``("", False)`` for no votes.
    """
    values = [value for value in values if value]
    if not values:
        return "", False
    counts = Counter(values)
    best = max(counts.values())
    top = sorted((value for value, count in counts.items() if count == best), key=order.index)
    if len(top) == 1:
        return top[0], False
    return top[(len(top) - 1) // 2], True


def _decide(adjudicated: list[str], readers: list[str], order: Sequence[str]) -> tuple[str, str]:
    decided = [value for value in adjudicated if value]
    if decided:
        return vote(decided, order)[0], "adjudicated"
    value, tied = vote(readers, order)
    if not value:
        return "", "none"
    return value, "tie" if tied else "majority"


def apply_protocol(readers: pd.DataFrame, protocol: ReadingProtocol) -> pd.DataFrame:
    """One row per study (:data:`STUDY_COLUMNS`) from the reader table, by the module's rules.

    ``excluded`` is empty for a labelled study and the reason for an invalid one (then
    ``appearance`` and ``grade`` are empty and both outcomes ``none``).
    """
    rows = []
    orders = {"appearance": APPEARANCE_ORDER, "grade": GRADE_ORDER}
    for study_uid, group in readers.groupby("study_uid", sort=True):
        voting = group[group.role == "reader"]
        judges = group[group.role == "adjudicator"]
        flags = int(voting.invalid.sum())
        row = {"study_uid": study_uid, "n_readers": len(voting), "invalid_flags": flags, "excluded": ""}
        if judges.invalid.any():
            names = ", ".join(judges.group_name[judges.invalid])
            row["excluded"] = f"invalid study: {protocol.invalid_label!r} from the adjudicator ({names})"
        elif flags * 2 > len(voting):
            row["excluded"] = (f"invalid study: {protocol.invalid_label!r} from {flags} of {len(voting)} "
                               "readers")
        for family in FAMILIES:
            if row["excluded"]:
                row[family], row[f"{family}_outcome"] = "", "none"
            else:
                row[family], row[f"{family}_outcome"] = _decide(
                    list(judges[family]), list(voting[family]), orders[family]
                )
        if row["appearance"] == "negative":
            row["grade"], row["grade_outcome"] = "", "none"
        rows.append(row)
    return pd.DataFrame(rows, columns=list(STUDY_COLUMNS))
