"""The confound floor: a built-in reference entry that sees only DICOM header metadata.

Why: RICORD's CT COVID task compares two separate collections (1a all positive, 1b all
negative), the design DeGrave et al. (Nature Machine Intelligence 2021) call near worst-case
confounding: a model can score well by recognizing the source, not the disease. The floor says
how far the header alone gets. An entry that does not clearly beat it has not shown that it
reads the images.

What it does, for a task that declares ``confound_floor`` in its ``task.yaml``:

1. reads the declared acquisition fields (:mod:`bench.data.acquisition`; never pixels) of one
   instance of every case's series, for the pinned split's train part and the scored part;
2. fits, per head, a scikit-learn pipeline on the train part only: one-hot categorical fields
   (unknown values ignored), median-imputed and standardized numeric ones, and an L2 logistic
   regression (``C`` from the task, lbfgs, deterministic); a head with one class in train
   predicts that class;
3. writes the scored part's probabilities as ``predictions.csv`` under the prepared case ids and
   scores it with the same code as any entry (:func:`bench.runners.selfreport.record_predictions`,
   then :func:`bench.scoring.score.score_and_store`), stored as entry ``confound-floor`` with a
   ``reference`` record in its receipt, so that boards draw it as a reference line instead of
   ranking it.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.acquisition import CATEGORICAL, read_acquisition
from bench.data.manifest import read_manifest
from bench.errors import SplitError, TaskSpecError
from bench.io import write_csv
from bench.pipeline.evaluate import ProgressCallback, prepared_split, stage_progress
from bench.prepare.reference import read_reference
from bench.runners.selfreport import record_predictions
from bench.scoring.score import score_and_store
from bench.splits.fingerprints import locate_series
from bench.splits.pinned import load_split
from bench.store import StoredRun
from bench.tasks import TaskSpec

log = logging.getLogger(__name__)

FLOOR_NAME = "confound-floor"
FLOOR_TEAM = "ricord-bench reference"
EXPLANATION = ("confound floor: a logistic regression on DICOM header metadata only (scanner, kernel, "
               "slice thickness, pixel spacing, matrix, study date, site), fitted on the train split; "
               "an entry that does not clearly beat it may be reading the source, not the disease")


@dataclass(frozen=True)
class ConfoundFloorReport:
    """What :func:`confound_floor` stored and what it saw."""

    stored: StoredRun
    features: tuple[str, ...]
    n_train: int
    n_scored: int


def _case_features(spec: TaskSpec, rows: pd.DataFrame, root: Path, progress) -> pd.DataFrame:
    """One row of acquisition fields per manifest row (same index), read from one instance each."""
    paths = locate_series(root, rows["series_uid"].astype(str), hint_dirs=rows.get("series_dir", ()),
                          progress=progress)
    missing = sorted(set(rows["series_uid"].astype(str)) - set(paths))
    if missing:
        raise SplitError(f"{root}: {len(missing)} series of task {spec.id} not found (e.g. {missing[:3]}); "
                         "the confound floor reads one header per case. Check --root.")
    records = [read_acquisition(paths[str(row.series_uid)][0],
                                site=str(row.site) if pd.notna(row.site) else None)
               for row in rows.itertuples()]
    return pd.DataFrame(records, index=rows.index)[list(spec.confound_floor.features)]


def _model(features: list[str], c: float):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [f for f in features if f in CATEGORICAL]
    numeric = [f for f in features if f not in CATEGORICAL]
    columns = ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ("numeric", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                              ("scale", StandardScaler())]), numeric),
    ])
    return Pipeline([("features", columns), ("model", LogisticRegression(C=c, max_iter=1000))])


def _prepared(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical fields as strings ("unknown" when absent), numeric ones as floats (NaN when absent)."""
    out = frame.copy()
    for column in out.columns:
        if column in CATEGORICAL:
            out[column] = out[column].map(lambda v: "unknown" if v is None or v != v else str(v))
        else:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return out


def fit_and_predict(spec: TaskSpec, train: pd.DataFrame, train_labels: pd.DataFrame,
                    scored: pd.DataFrame) -> pd.DataFrame:
    """Per head, fit on ``train`` (features) and ``train_labels`` (the heads' columns); predict ``scored``.

    Returns one probability column per class of every head, indexed like ``scored``.
    """
    features = list(spec.confound_floor.features)
    x_train, x_scored = _prepared(train[features]), _prepared(scored[features])
    columns = {}
    for head in spec.heads:
        labels = train_labels[head.column]
        known = labels.notna() & labels.astype(str).isin(head.classes)
        seen = sorted(set(labels[known].astype(str)))
        if len(seen) < 2:
            only = seen[0] if seen else None
            for name in head.classes:
                columns[name] = np.full(len(scored),
                                        1.0 / len(head.classes) if only is None else float(name == only))
            continue
        model = _model(features, spec.confound_floor.C).fit(x_train[known.to_numpy()],
                                                            labels[known].astype(str))
        probabilities = model.predict_proba(x_scored)
        fitted = list(model.classes_)
        for name in head.classes:
            columns[name] = probabilities[:, fitted.index(name)] if name in fitted else np.zeros(len(scored))
    return pd.DataFrame(columns, index=scored.index)


def confound_floor(spec: TaskSpec, *, root: str | Path, name: str = "synthetic", split: str = "test",
                   results: str | Path = "results", work: str | Path | None = None,
                   tasks_dir: str | Path | None = None,
                   progress: ProgressCallback | None = None) -> ConfoundFloorReport:
    """Fit the task's confound floor on the train split, score it on ``split`` and store it.

    Raises
    ------
    TaskSpecError
        The task declares no ``confound_floor`` (or ``split`` is the train split itself).
    """
    if spec.confound_floor is None:
        raise TaskSpecError(f"task {spec.id} declares no confound_floor in its task.yaml; add one (fields "
                            "to use, e.g. [manufacturer, model, kernel, site]) to offer the floor.")
    if split == "train":
        raise TaskSpecError(
            "the confound floor is fitted on the train split; score it on validation or test.")
    root = Path(root)
    work = Path(work) if work is not None else Path(results) / ".work"
    prepared, _ = prepared_split(spec, root=root, name=name, split=split, work=work, tasks_dir=tasks_dir,
                                 progress=progress)
    reference = read_reference(prepared / "reference", check_masks=False)
    manifest = read_manifest(root / "manifest.csv").set_index("case_id", drop=False)
    train_ids = load_split(spec.id, name, directory=tasks_dir).case_ids("train")
    scored_ids = reference.cases["source_case_id"].astype(str).tolist()
    rows = manifest.loc[train_ids + scored_ids]
    features = _case_features(spec, rows, root, stage_progress(progress, "confound floor: headers"))
    train = features.iloc[:len(train_ids)]
    scored = features.iloc[len(train_ids):]
    probabilities = fit_and_predict(spec, train, rows.iloc[:len(train_ids)], scored).reset_index(drop=True)
    probabilities.insert(0, "case_id", reference.cases["case_id"].astype(str).to_numpy())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = work.absolute() / "runs" / spec.id / FLOOR_NAME / f"{split}-{stamp}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    predictions = folder.parent / f"{folder.name}-predictions" / "predictions.csv"
    predictions.parent.mkdir()
    write_csv(predictions, probabilities.sort_values("case_id"))
    record_predictions(spec, predictions, prepared / "reference", folder, team=FLOOR_TEAM, entry=FLOOR_NAME)
    stored = score_and_store(spec, folder, prepared / "reference", results=results, tasks_dir=tasks_dir,
                             reference={"kind": FLOOR_NAME, "explanation": EXPLANATION,
                                        "features": list(spec.confound_floor.features)},
                             progress=stage_progress(progress, "confound floor: score"))
    log.info("confound floor of %s on %s/%s: %d train cases, %d scored", spec.id, name, split,
             len(train_ids), len(scored_ids))
    return ConfoundFloorReport(stored, tuple(spec.confound_floor.features), len(train_ids), len(scored_ids))
