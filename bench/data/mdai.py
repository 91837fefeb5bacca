"""The MD.ai annotation export (JSON) as RICORD ships it, polygon rasterization, readers.

The only parser of the export: :func:`read_export` gives the tables indexing and masks use,
:func:`read_annotation_records` the reduced records a pinned split fingerprints, both through
the same loading and traversal.

The export holds ``labelGroups[].labels[]`` (id, name, scope, annotationMode, type) and
``datasets[].annotations[]`` (labelId, Study/Series/SOPInstanceUID, data, createdById, ...).
Label names are read from the file; nothing here depends on label ids.

Conventions:

- ``reader`` is the annotation's ``createdById`` (the label group id when that is null): the
  user. Readers of the reading protocol are label *groups* (:mod:`bench.data.protocol`): a
  mask per reader group, the Adjudication group's polygons decide where it drew any, the
  Default group draws no reader's mask.
- ``data.vertices`` are ``[x = column, y = row]`` in pixel-centre coordinates of the slice
  named by ``SOPInstanceUID`` (pixel ``(row r, column c)`` has its centre at ``x=c, y=r``);
  a polygon covers the pixels whose centres fall inside it (:func:`skimage.draw.polygon`).
  Several polygons of one label and reader group on a slice are OR-ed.
- A polygon with a vertex outside its slice (beyond the pixel area ``[-0.5, columns - 0.5]`` x
  ``[-0.5, rows - 0.5]``) is clipped to that area before it is drawn (:func:`clip_to_image`),
  which keeps exactly the pixels whose centres it encloses; it is counted
  (:func:`clipped_annotations`: the index report and the reference name each one). Drawing it
  unclipped is not safe: the rasterizer works in 64-bit integers, and a vertex past 9.2e18
  pixels drew nothing at all (further out, an OverflowError).
- Vertices must be finite numbers, at least three of them (fewer enclose no area); an
  annotation that breaks this is malformed: skipped and counted, its reason naming it.
- Rows whose label needs geometry (freeform, polygon, bbox, ...) but whose ``data`` is null
  (or whose polygon has no vertices) are skipped and counted (``n_null_data``); study-level
  labels carry null data by design and are kept.
- Reader groups combine by ``union`` (any) or ``majority`` (more than half of the reader
  groups who annotated anything in the study; with two that is their intersection).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.draw import polygon as draw_polygon

from bench.data.protocol import group_roles
from bench.errors import AnnotationError
from bench.tasks import RICORD_PROTOCOL, ReadingProtocol

log = logging.getLogger(__name__)

#: Keys of each reduced annotation record (:func:`read_annotation_records`).
ANNOTATION_FIELDS = ("label", "scope", "reader", "study_uid", "series_uid", "sop_uid", "frame", "data")
#: annotationMode values whose rows must carry ``data``.
GEOMETRIC_MODES = frozenset({"freeform", "polygon", "bbox", "line", "location", "mask"})
#: annotationMode values rasterized into masks.
AREA_MODES = frozenset({"freeform", "polygon", "bbox"})

LABEL_COLUMNS = (
    "label_id",
    "label_name",
    "scope",
    "annotation_mode",
    "label_type",
    "group_id",
    "group_name",
    "source",
)
ANNOTATION_COLUMNS = (
    "annotation_id",
    "label_id",
    "label_name",
    "scope",
    "annotation_mode",
    "group_id",
    "group_name",
    "study_uid",
    "series_uid",
    "sop_uid",
    "reader",
    "vertices",
    "height",
    "width",
    "created_at",
    "dataset_id",
    "source",
)

READER_RULES = ("union", "majority")


@dataclass(frozen=True, eq=False)
class MdaiExport:
    """One or more parsed MD.ai exports.

    ``labels``: one row per label (:data:`LABEL_COLUMNS`). ``annotations``: one row per kept
    annotation (:data:`ANNOTATION_COLUMNS`; ``vertices`` is an ``(n, 2)`` float array of
    ``[x, y]`` or None). ``null_data``: ids of the skipped rows without data. ``malformed``:
    (id, reason) of the skipped rows whose data cannot be used (vertices that are not number
    pairs, a slice-level polygon without its SOPInstanceUID): one bad annotation is left out
    and counted, never aborting the whole export.
    """

    sources: tuple[str, ...]
    labels: pd.DataFrame
    annotations: pd.DataFrame
    null_data: tuple[str, ...]
    malformed: tuple[tuple[str, str], ...] = ()

    @property
    def n_null_data(self) -> int:
        """Rows skipped because their geometric label had null ``data``."""
        return len(self.null_data)


def _load_json(path: Path) -> dict:
    """The export's JSON document, checked to have the ``labelGroups`` and ``datasets`` lists."""
    if not path.is_file():
        raise AnnotationError(
            f"{path}: annotation export not found. Pass the MD.ai JSON from the "
            "collection's TCIA page (unzipped) with --annotations."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(f"{path}: not a readable UTF-8 JSON file ({error}). Re-download and unzip "
                              "the MD.ai export.") from error
    if not text.strip():
        raise AnnotationError(
            f"{path}: annotation export is empty (0 bytes of JSON). Re-download and unzip the MD.ai export."
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnnotationError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}). The file is truncated or not an MD.ai export; "
            "re-download it."
        ) from error
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("labelGroups"), list)
        or not isinstance(doc.get("datasets"), list)
    ):
        keys = sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__
        raise AnnotationError(
            f"{path}: not an MD.ai export: expected top-level 'labelGroups' and "
            f"'datasets' lists, got {keys}. Pass the *_annotations_labelgroup_all_*.json file."
        )
    return doc


def _vertices(data, mode: str, where: str) -> np.ndarray | None:
    if mode in ("freeform", "polygon"):
        raw = data.get("vertices") if isinstance(data, dict) else None
        try:
            vertices = np.asarray(raw, dtype=float)
        except (TypeError, ValueError):
            vertices = None
        if vertices is None or vertices.ndim != 2 or vertices.shape[1] != 2:
            raise AnnotationError(
                f"{where}: data.vertices must be a list of [x, y] number pairs, got "
                f"{str(raw)[:80]!r}. The export is malformed; re-download it."
            )
        finite = np.isfinite(vertices).all(axis=1)
        if not finite.all():
            k = int(np.argmin(finite))
            raise AnnotationError(
                f"{where}: data.vertices must be finite numbers; vertex {k} is {vertices[k].tolist()} "
                f"({int((~finite).sum())} of {len(vertices)} vertices are NaN or infinite). The export is "
                "malformed; re-download it."
            )
        if len(np.unique(vertices, axis=0)) < 3:
            raise AnnotationError(
                f"{where}: data.vertices must hold at least 3 distinct vertices to enclose an area, got "
                f"{len(vertices)} ({str(raw)[:80]}). Nothing can be drawn from it."
            )
        return vertices
    if mode == "bbox":
        try:
            x, y = float(data["x"]), float(data["y"])
            w, h = float(data["width"]), float(data["height"])
        except (TypeError, KeyError, ValueError) as error:
            raise AnnotationError(
                f"{where}: bbox data needs numeric x, y, width, height, got {str(data)[:80]!r}."
            ) from error
        if not np.isfinite([x, y, w, h, x + w, y + h]).all():
            raise AnnotationError(
                f"{where}: bbox data needs finite x, y, width, height, got {str(data)[:80]!r}.")
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    return None


def _label_rows(doc: dict, source: str) -> list[dict]:
    rows = []
    for g, group in enumerate(doc["labelGroups"]):
        if not isinstance(group, dict) or not isinstance(group.get("labels", []), list):
            raise AnnotationError(f"{source}: labelGroups[{g}] is not an object with a labels list.")
        for label in group.get("labels", []):
            if not isinstance(label, dict) or not label.get("id") or label.get("name") is None:
                raise AnnotationError(
                    f"{source}: labelGroups[{g}] has a label without id or name: {str(label)[:80]!r}."
                )
            rows.append(
                {
                    "label_id": str(label["id"]),
                    "label_name": str(label["name"]).strip(),
                    "scope": str(label.get("scope") or "").upper(),
                    "annotation_mode": str(label.get("annotationMode") or "").lower(),
                    "label_type": str(label.get("type") or ""),
                    "group_id": str(group.get("id") or ""),
                    "group_name": str(group.get("name") or ""),
                    "source": source,
                }
            )
    return rows


def _annotations(doc: dict, source: str) -> Iterator[tuple[str, dict, dict]]:
    """``(ident, dataset, annotation)`` for every annotation of the export, in file order.

    ``ident`` is the annotation's id, else its position. Raises when a dataset is not an object
    with an annotations list, or an annotation lacks its labelId or StudyInstanceUID.
    """
    for d, dataset in enumerate(doc["datasets"]):
        if not isinstance(dataset, dict) or not isinstance(dataset.get("annotations", []), list):
            raise AnnotationError(f"{source}: datasets[{d}] is not an object with an annotations list.")
        for a, ann in enumerate(dataset.get("annotations", [])):
            if not isinstance(ann, dict) or not ann.get("labelId") or not ann.get("StudyInstanceUID"):
                raise AnnotationError(
                    f"{source}: datasets[{d}].annotations[{a}] lacks labelId or "
                    "StudyInstanceUID; the export is malformed."
                )
            yield str(ann.get("id") or f"datasets[{d}].annotations[{a}]"), dataset, ann


def _unknown_labels(source: str, unknown: list[tuple[str, str]]) -> AnnotationError:
    shown = ", ".join(f"{ident} -> {label_id}" for ident, label_id in unknown[:5])
    return AnnotationError(
        f"{source}: {len(unknown)} annotation(s) use a labelId that no labelGroups entry defines "
        f"({shown}{', ...' if len(unknown) > 5 else ''}). Unknown label ids: "
        f"{sorted({label_id for _, label_id in unknown})}. The export is incomplete or mixed with another "
        "project's; use the matching labelgroup_all export."
    )


def _annotation_rows(doc: dict, labels: dict[str, dict], source: str) -> tuple[list, list, list]:
    rows, null_data, unknown, malformed = [], [], [], []
    for ident, dataset, ann in _annotations(doc, source):
        where = f"{source}: annotation {ident}"
        label = labels.get(str(ann["labelId"]))
        if label is None:
            unknown.append((ident, str(ann["labelId"])))
            continue
        mode = label["annotation_mode"]
        data = ann.get("data")
        empty = data is None or (
            mode in ("freeform", "polygon") and isinstance(data, dict) and not data.get("vertices")
        )
        if mode in GEOMETRIC_MODES and empty:
            null_data.append(ident)
            continue
        try:
            vertices = _vertices(data, mode, where) if data is not None else None
        except AnnotationError as error:
            malformed.append((ident, str(error)))
            continue
        if label["scope"] == "INSTANCE" and vertices is not None and not ann.get("SOPInstanceUID"):
            reason = f"{where}: INSTANCE-scope polygon without SOPInstanceUID; cannot place it on a slice."
            malformed.append((ident, reason))
            continue
        rows.append(
            {
                "annotation_id": ident,
                "label_id": label["label_id"],
                "label_name": label["label_name"],
                "scope": label["scope"],
                "annotation_mode": mode,
                "group_id": label["group_id"],
                "group_name": label["group_name"],
                "study_uid": str(ann["StudyInstanceUID"]),
                "series_uid": str(ann.get("SeriesInstanceUID") or ""),
                "sop_uid": str(ann.get("SOPInstanceUID") or ""),
                "reader": str(ann.get("createdById") or label["group_id"]),
                "vertices": vertices,
                "height": int(ann.get("height") or 0),
                "width": int(ann.get("width") or 0),
                "created_at": str(ann.get("createdAt") or ""),
                "dataset_id": str(dataset.get("id") or ""),
                "source": source,
            }
        )
    if unknown:
        raise _unknown_labels(source, unknown)
    return rows, null_data, malformed


def read_export(path: str | os.PathLike) -> MdaiExport:
    """Parse one MD.ai export JSON.

    Raises
    ------
    AnnotationError
        Missing, empty or malformed file; missing ``labelGroups``/``datasets``; an annotation
        whose labelId is not defined; malformed polygon data.
    """
    path = Path(path)
    doc = _load_json(path)
    source = path.name
    label_rows = _label_rows(doc, source)
    by_id = {row["label_id"]: row for row in label_rows}
    rows, null_data, malformed = _annotation_rows(doc, by_id, source)
    if null_data:
        log.warning("%s: skipped %d annotation(s) with null data", path, len(null_data))
    if malformed:
        log.warning("%s: skipped %d malformed annotation(s), e.g. %s", path, len(malformed), malformed[0][1])
    return MdaiExport(
        sources=(str(path),),
        labels=pd.DataFrame(label_rows, columns=list(LABEL_COLUMNS)),
        annotations=pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS)),
        null_data=tuple(null_data),
        malformed=tuple(malformed),
    )


def merge_exports(exports: Iterable[MdaiExport]) -> MdaiExport:
    """Concatenate several exports (e.g. the 1a and the 1c file) into one.

    Raises
    ------
    AnnotationError
        When one label id is defined with two different names.
    """
    exports = list(exports)
    labels = (
        pd.concat([e.labels for e in exports], ignore_index=True)
        if exports
        else pd.DataFrame(columns=list(LABEL_COLUMNS))
    )
    clash = labels.groupby("label_id")["label_name"].nunique()
    if (clash > 1).any():
        label_id = clash[clash > 1].index[0]
        raise AnnotationError(
            f"label id {label_id} has different names in "
            f"{sorted(labels.loc[labels.label_id == label_id, 'source'])}; these exports "
            "cannot be combined."
        )
    annotations = (
        pd.concat([e.annotations for e in exports], ignore_index=True)
        if exports
        else pd.DataFrame(columns=list(ANNOTATION_COLUMNS))
    )
    return MdaiExport(
        sources=tuple(s for e in exports for s in e.sources),
        labels=labels.drop_duplicates(["label_id", "source"]).reset_index(drop=True),
        annotations=annotations,
        null_data=tuple(i for e in exports for i in e.null_data),
        malformed=tuple(item for e in exports for item in e.malformed),
    )


def read_exports(paths: Sequence[str | os.PathLike]) -> MdaiExport:
    """Parse and merge several exports (see :func:`read_export`, :func:`merge_exports`)."""
    return merge_exports(read_export(p) for p in paths)


def polygon_label_names(export: MdaiExport) -> list[str]:
    """Names of the INSTANCE-scope area labels (the 1a lesion polygons), sorted."""
    labels = export.labels
    keep = (labels.scope == "INSTANCE") & labels.annotation_mode.isin(AREA_MODES)
    return sorted(set(labels.loc[keep, "label_name"]))


def _image_box(shape_yx: tuple[int, int]) -> tuple[float, float, float, float]:
    """The slice's pixel area in vertex coordinates: (x low, y low, x high, y high)."""
    return -0.5, -0.5, shape_yx[1] - 0.5, shape_yx[0] - 0.5


def outside_image(vertices: np.ndarray, shape_yx: tuple[int, int]) -> bool:
    """Whether any vertex lies beyond the slice's pixel area (a vertex on its border does not)."""
    x_low, y_low, x_high, y_high = _image_box(shape_yx)
    vertices = np.asarray(vertices, dtype=float)
    return bool(((vertices[:, 0] < x_low) | (vertices[:, 0] > x_high)
                 | (vertices[:, 1] < y_low) | (vertices[:, 1] > y_high)).any())


def clip_to_image(vertices: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """The polygon clipped to the slice's pixel area (Sutherland-Hodgman, one box edge at a time).

    Clipping against a half-plane replaces each outside stretch of the outline by a stretch of
    the box edge; the two together form a loop outside the box, so every point strictly inside
    keeps its winding number, and with it the even-odd inside test the rasterizer applies, for
    self-intersecting outlines too. Pixel centres lie strictly inside the box. The result may
    have fewer than three vertices (nothing of the polygon is on the slice).
    """
    x_low, y_low, x_high, y_high = _image_box(shape_yx)
    points = [tuple(v) for v in np.asarray(vertices, dtype=float)]
    edges = ((0, x_low, False), (0, x_high, True), (1, y_low, False), (1, y_high, True))
    for axis, bound, keep_below in edges:
        def inside(point, axis=axis, bound=bound, keep_below=keep_below):
            return point[axis] <= bound if keep_below else point[axis] >= bound

        clipped = []
        for k, current in enumerate(points):
            previous = points[k - 1]
            if inside(current) != inside(previous):
                # from the inside end: the step is small there, so a far vertex costs no precision
                near, far = (current, previous) if inside(current) else (previous, current)
                t = (bound - near[axis]) / (far[axis] - near[axis])
                crossing = [near[0] + t * (far[0] - near[0]), near[1] + t * (far[1] - near[1])]
                crossing[axis] = bound
                clipped.append(tuple(crossing))
            if inside(current):
                clipped.append(current)
        points = clipped
        if not points:
            break
    return np.array(points, dtype=float).reshape(-1, 2)


def rasterize_polygon(vertices: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
    """Boolean ``(y, x)`` mask of the pixels whose centres lie inside the polygon.

    ``vertices`` is ``(n, 2)`` of finite ``[x = column, y = row]``; the polygon closes itself.
    One with a vertex outside the slice is clipped to it first (:func:`clip_to_image`).
    """
    mask = np.zeros(shape_yx, dtype=bool)
    vertices = np.asarray(vertices, dtype=float)
    if outside_image(vertices, shape_yx):
        vertices = clip_to_image(vertices, shape_yx)
        if len(vertices) < 3:
            return mask
    rr, cc = draw_polygon(vertices[:, 1], vertices[:, 0], shape=shape_yx)
    mask[rr, cc] = True
    return mask


def _select_labels(export: MdaiExport, labels: Sequence[str] | None) -> list[str]:
    available = polygon_label_names(export)
    if labels is None:
        return available
    wanted = [str(name).strip() for name in labels]
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise AnnotationError(
            f"label(s) {unknown} are not polygon labels of {list(export.sources)}; available: {available}."
        )
    return wanted


def _case_rows(export: MdaiExport, sop_uids: Sequence[str], series_uid: str | None) -> pd.DataFrame:
    table = export.annotations
    sop_set = set(sop_uids)
    hit = table.sop_uid.isin(sop_set)
    if series_uid:
        hit |= table.series_uid == series_uid
    rows = table[hit]
    stray = rows[(rows.scope == "INSTANCE") & (rows.sop_uid != "") & ~rows.sop_uid.isin(sop_set)]
    if len(stray):
        first = stray.iloc[0]
        raise AnnotationError(
            f"annotation {first.annotation_id} ({first.label_name}) refers to SOPInstanceUID "
            f"{first.sop_uid} of series {first.series_uid}, which is not among the {len(sop_set)} loaded "
            f"slices ({len(stray)} such annotation(s)). The series is incomplete; re-download it."
        )
    return rows


def _drawn(export: MdaiExport, volume_sop_uids: Sequence[str], labels: Sequence[str] | None,
           series_uid: str | None, aliases: Mapping[str, str] | None):
    """(slice index by SOPInstanceUID, the case's annotation rows, the rows drawn into its masks)."""
    names = _select_labels(export, labels)
    index = {uid: k for k, uid in enumerate(volume_sop_uids)}
    index.update({dropped: index[kept] for dropped, kept in (aliases or {}).items() if kept in index})
    rows = _case_rows(export, list(index), series_uid)
    drawn = rows[rows.label_name.isin(names) & rows.annotation_mode.isin(AREA_MODES) & (rows.sop_uid != "")]
    return index, rows, drawn[drawn.vertices.notna()]


def clipped_annotations(
    export: MdaiExport,
    volume_sop_uids: Sequence[str],
    shape_yx: tuple[int, int],
    *,
    labels: Sequence[str] | None = None,
    series_uid: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Ids of the annotations :func:`reader_masks` draws for this volume that had to be clipped
    (a vertex outside the slice, :func:`outside_image`), in file order."""
    _, _, drawn = _drawn(export, volume_sop_uids, labels, series_uid, aliases)
    return tuple(row.annotation_id for row in drawn.itertuples(index=False)
                 if outside_image(row.vertices, shape_yx))


def reader_masks(
    export: MdaiExport,
    volume_sop_uids: Sequence[str],
    shape_yx: tuple[int, int],
    *,
    labels: Sequence[str] | None = None,
    series_uid: str | None = None,
    protocol: ReadingProtocol = RICORD_PROTOCOL,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """One boolean ``(z, y, x)`` mask per label group of the study the volume belongs to.

    Parameters
    ----------
    export : MdaiExport
    volume_sop_uids : sequence of str
        SOPInstanceUID of each slice in array order (``CtVolume.sop_uids``).
    shape_yx : (int, int)
        Rows and columns of a slice.
    labels : sequence of str, optional
        Label names to rasterize (OR-ed); default every INSTANCE-scope polygon label.
    series_uid : str, optional
        Also pull in this series' annotations, so that one on a slice that is not in the
        volume raises instead of being ignored.
    protocol : ReadingProtocol
        Which groups adjudicate and which are no reader (:func:`bench.data.protocol.group_roles`).
    aliases : mapping, optional
        SOPInstanceUIDs of exact duplicate slices dropped from the volume -> the kept slice
        (``CtVolume.sop_aliases``); their polygons are drawn on the kept slice.

    Returns
    -------
    dict
        ``{"reader": {group id: mask}, "adjudicator": {group id: mask}}``: every reader group
        with any annotation in the study (one that drew nothing of the chosen labels gets an
        empty mask and still counts for majority), and every adjudicator group that drew any
        of the chosen labels. Non-reader groups are left out.

    Raises
    ------
    AnnotationError
        Unknown label names, or polygons on slices that are not in the volume.
    """
    index, rows, drawn = _drawn(export, volume_sop_uids, labels, series_uid, aliases)
    studies = set(rows.study_uid)
    table = export.annotations
    roles = group_roles(export.labels, protocol)
    shape = (len(volume_sop_uids), int(shape_yx[0]), int(shape_yx[1]))
    present = set(table.loc[table.study_uid.isin(studies), "group_id"])
    masks: dict[str, dict[str, np.ndarray]] = {
        "reader": {g: np.zeros(shape, dtype=bool) for g in sorted(present) if roles.get(g) == "reader"},
        "adjudicator": {g: np.zeros(shape, dtype=bool) for g in sorted(set(drawn.group_id))
                        if roles.get(g) == "adjudicator"},
    }
    for row in drawn.itertuples(index=False):
        role = roles.get(row.group_id)
        if role not in masks:
            continue
        masks[role][row.group_id][index[row.sop_uid]] |= rasterize_polygon(row.vertices, shape[1:])
    return masks


def combine_readers(
    masks: Sequence[np.ndarray], *, readers: str = "union", shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Combine per-reader masks: ``union`` (any) or ``majority`` (count * 2 > number of readers).

    With no readers the result is an all-False array of ``shape``.
    """
    if readers not in READER_RULES:
        raise AnnotationError(f"readers must be one of {READER_RULES}, got {readers!r}.")
    masks = list(masks)
    if not masks:
        if shape is None:
            raise AnnotationError("combine_readers: no reader masks and no shape given.")
        return np.zeros(shape, dtype=bool)
    stack = np.stack(masks)
    if readers == "union":
        return stack.any(axis=0)
    return stack.sum(axis=0, dtype=np.int32) * 2 > len(masks)


def rasterize_case(
    export: MdaiExport,
    volume_sop_uids: Sequence[str],
    shape_yx: tuple[int, int],
    *,
    labels: Sequence[str] | None = None,
    readers: str = "union",
    series_uid: str | None = None,
    protocol: ReadingProtocol = RICORD_PROTOCOL,
    aliases: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Boolean ``(z, y, x)`` lesion mask of one case (see :func:`reader_masks`).

    Where an adjudicator group drew any of the labels, its mask is the reference (several
    adjudicator groups are united); otherwise the reader groups' masks combine by ``readers``.
    """
    masks = reader_masks(export, volume_sop_uids, shape_yx, labels=labels, series_uid=series_uid,
                         protocol=protocol, aliases=aliases)
    return reference_mask(masks, readers=readers,
                          shape=(len(volume_sop_uids), int(shape_yx[0]), int(shape_yx[1])))


def reference_mask(masks: Mapping[str, Mapping[str, np.ndarray]], *, readers: str,
                   shape: tuple[int, ...]) -> np.ndarray:
    """The reference from :func:`reader_masks`: the adjudicators' union where any drew, else the
    reader groups combined by ``readers``."""
    if masks["adjudicator"]:
        return combine_readers(list(masks["adjudicator"].values()), readers="union", shape=shape)
    return combine_readers(list(masks["reader"].values()), readers=readers, shape=shape)


def read_annotation_records(paths: Sequence[str | os.PathLike]) -> dict[str, list[dict]]:
    """Every annotation of the given exports reduced to what carries meaning, by StudyInstanceUID.

    What a pinned split fingerprints (:func:`bench.splits.fingerprints.annotations_fingerprint`):
    each record keeps :data:`ANNOTATION_FIELDS`, with the label id resolved to the label's name
    and scope (ids differ between projects, names carry the meaning), ``reader`` the raw
    ``createdById``, ``data`` as exported but with integral numbers as integers (``47.0`` and
    ``47`` hash alike). Volatile fields an export rewrites without a change of content (record
    ids, timestamps, review counters, update history) are left out. Rows without data are kept:
    they are part of what was exported. The same parsing as :func:`read_export`.

    Raises
    ------
    AnnotationError
        A file is missing, not JSON, not an MD.ai export, or uses an undefined label id.
    """
    by_study: dict[str, list[dict]] = {}
    for path in map(Path, paths):
        doc = _load_json(path)
        labels = {row["label_id"]: row for row in _label_rows(doc, path.name)}
        unknown = []
        for ident, _, ann in _annotations(doc, path.name):
            label = labels.get(str(ann["labelId"]))
            if label is None:
                unknown.append((ident, str(ann["labelId"])))
                continue
            record = {
                "label": label["label_name"],
                "scope": label["scope"],
                "reader": ann.get("createdById"),
                "study_uid": ann.get("StudyInstanceUID"),
                "series_uid": ann.get("SeriesInstanceUID"),
                "sop_uid": ann.get("SOPInstanceUID"),
                "frame": ann.get("frameNumber"),
                "data": _plain_numbers(ann.get("data")),
            }
            by_study.setdefault(str(record["study_uid"]), []).append(record)
        if unknown:
            raise _unknown_labels(str(path), unknown)
    return by_study


def _plain_numbers(value):
    """Integral floats as ints (``47.0`` -> ``47``), so a re-serialized export hashes the same; a
    NaN or infinity (JSON has no such number, Python's parser accepts the literals) as the literal's
    text, so an export with a malformed vertex can still be fingerprinted."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain_numbers(item) for key, item in value.items()}
    return value


def annotation_files(paths: Iterable[str | os.PathLike], *,
                     root: str | os.PathLike | None = None) -> list[Path]:
    """The MD.ai export files to use: each given file, every ``*.json`` of each given directory.

    With nothing given, ``root/annotations/*.json`` (where ``bench data synth`` writes them) when
    that directory exists; otherwise no file. The result is sorted and free of duplicates.
    """
    found: set[Path] = set()
    given = [Path(p) for p in paths]
    if not given and root is not None and (Path(root) / "annotations").is_dir():
        given = [Path(root) / "annotations"]
    for path in given:
        if path.is_dir():
            found.update(p for p in path.glob("*.json") if p.is_file())
        elif path.is_file():
            found.add(path)
        else:
            raise AnnotationError(f"{path}: annotation export not found. Pass the MD.ai JSON file(s) "
                                  "(or the folder holding them) with --annotations.")
    return sorted(found)
