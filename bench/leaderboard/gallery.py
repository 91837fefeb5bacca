"""The case gallery of a shown split: every case's image with the reference and the entry's prediction.

Why: a number says how well an entry did, a picture says where it went wrong (a missed lobe,
a leak into the heart). For each case the gallery shows the axial slice with the largest
reference area (a slice in the middle when the reference is empty; the image itself for a 2D
radiograph), the reference contour and the entry's predicted contour, as a small PNG thumbnail
(:func:`bench.leaderboard.plots.case_png`); classification tasks show the image with the
reference and predicted class. Nothing of it is made on a split whose per-case data are hidden.

Where the pictures come from: the store keeps scores, not images. A run's receipt records the
reference it was scored against (``reference.path`` and ``reference.sha256``) and the run
folder with the predictions (``run.path`` and ``run.outputs_sha256``). :class:`Sources` looks
for them there, then in the folders given to ``bench leaderboard build --prepared DIR`` (a
prepared split, or a folder holding several, e.g. ``work/prepared``) and ``--runs DIR`` (run
folders, e.g. ``work/runs``), and uses a tree only when its hash is the one recorded: the
reference by its ``reference_sha256``, the input images by the reference's ``inputs_sha256``,
the predictions by the run's ``outputs_sha256``. A board whose trees are not found, or hold a
file that cannot be read or no longer matches its hash, gets no gallery (the build goes on),
and its entry pages say why.
"""

import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from bench.errors import PrepareError, ScoringError
from bench.io import write_bytes
from bench.leaderboard import plots
from bench.leaderboard.entries import entry_folder
from bench.prepare.digest import input_tree_digest
from bench.prepare.nifti import read_volume
from bench.prepare.reference import Reference, read_reference, read_reference_mask
from bench.ranking.board import Board, BoardEntry
from bench.runners.record import RunRecord, read_run
from bench.store import slugify

log = logging.getLogger(__name__)

GALLERY = "gallery"
PAGE = "gallery.html"
SEARCH_DEPTH = 4
"""How deep below a ``--prepared`` folder prepared splits are looked for (``<task>/<name>/<split>``)."""
CT_WINDOW = (-1350.0, 150.0)
"""Lung window (level -600 HU, width 1500 HU) for CT slices."""


@dataclass(frozen=True)
class Prepared:
    """A prepared split found for a board: its verified reference and its input images by case."""

    reference: Reference
    images: Mapping[str, Path]


@dataclass(frozen=True)
class Thumbnail:
    """One case of an entry's gallery, as the page shows it."""

    case_id: str
    src: str
    """The PNG, relative to the gallery page."""
    width: int
    height: int
    caption: str
    status: str


class Sources:
    """Finds the prepared split and the run outputs a board's gallery is drawn from (cached)."""

    def __init__(self, prepared: Sequence[str | os.PathLike] = (), runs: Sequence[str | os.PathLike] = ()):
        self.prepared_roots = [Path(p) for p in prepared]
        self.run_roots = [Path(p) for p in runs]
        self._prepared: dict[str, Prepared | None] = {}

    def prepared(self, receipt: Mapping[str, Any]) -> Prepared | None:
        """The prepared split the receipt's run was scored on, verified by its hashes; else None."""
        wanted = (receipt.get("reference") or {}).get("sha256")
        if not wanted:
            return None
        if wanted not in self._prepared:
            self._prepared[wanted] = self._find_prepared(receipt, wanted)
        return self._prepared[wanted]

    def _find_prepared(self, receipt: Mapping[str, Any], wanted: str) -> Prepared | None:
        recorded = (receipt.get("reference") or {}).get("path")
        candidates = [Path(recorded)] if recorded else []
        for root in self.prepared_roots:
            for depth in range(SEARCH_DEPTH + 1):
                pattern = "/".join(["*"] * depth + ["reference", "reference.json"])
                candidates += [path.parent for path in sorted(root.glob(pattern))]
        for folder in dict.fromkeys(candidates):
            if _recorded_sha(folder / "reference.json", "reference_sha256") != wanted:
                continue
            try:
                reference = read_reference(folder, check_masks=False)
                images = _images(folder.parent / "input", reference)
            except PrepareError as error:
                log.warning("prepared split %s not used for the gallery: %s", folder.parent, error)
                continue
            return Prepared(reference, images)
        return None

    def outputs(self, receipt: Mapping[str, Any]) -> RunRecord | None:
        """The run folder holding the receipt's predictions, verified by its outputs hash; else None."""
        run = receipt.get("run") or {}
        recorded, wanted = run.get("path"), run.get("outputs_sha256")
        if not recorded or not wanted:
            return None
        name = Path(recorded).name
        candidates = [Path(recorded)]
        for root in self.run_roots:
            candidates += sorted(root.glob(f"**/{name}"))
        for folder in dict.fromkeys(candidates):
            if not (folder / "run.json").is_file():
                continue
            try:
                record = read_run(folder)
            except ScoringError as error:
                log.warning("run folder %s not used for the gallery: %s", folder, error)
                continue
            if record.outputs_sha256() == wanted:
                return record
        return None


def _recorded_sha(path: Path, key: str) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _images(input_dir: Path, reference: Reference) -> dict[str, Path]:
    """The input image of every reference case, after checking the input tree's digest."""
    if reference.inputs_sha256 is not None:
        try:
            found = input_tree_digest(input_dir)
        except (OSError, ValueError, KeyError) as error:
            raise PrepareError(f"{input_dir}: unreadable prepared inputs ({error})") from error
        if found != reference.inputs_sha256:
            raise PrepareError(f"{input_dir}: inputs digest {found} differs from the reference's "
                               f"{reference.inputs_sha256}")
    cases = json.loads((input_dir / "cases.json").read_text(encoding="utf-8"))["cases"]
    return {case["case_id"]: input_dir / case["image"] for case in cases}


NOT_FOUND = ("No case gallery: the prepared split these runs were scored on was not found where their "
             "receipts record it. Rebuild with `bench leaderboard build --prepared DIR`, naming the prepared "
             "split or a folder holding it (e.g. work/prepared).")
"""What a shown board's entry pages say when its prepared split was not found."""
UNREADABLE = ("No case gallery: a file of the prepared split these runs were scored on could not be read "
              "or no longer matches its recorded hash (the build's log names it). Prepare the split again.")
"""What the entry pages say when the prepared split was found but a case of it cannot be drawn."""


def board_galleries(board: Board, board_folder: Path, sources: Sources
                    ) -> tuple[dict[str, list[Thumbnail]], dict[str, str]]:
    """Draw the gallery of every entry of a shown ``board``: (thumbnails, why none) by entry slug.

    Entries are grouped by the reference they were scored against (normally one per board);
    an entry whose prepared split is not found gets :data:`NOT_FOUND` instead of thumbnails.
    """
    if board.hide_per_case:
        return {}, {}
    groups: dict[str, list[BoardEntry]] = {}
    reasons = {}
    for entry in board.entries:
        if sources.prepared(entry.run.receipt) is None:
            reasons[entry.run.submission] = NOT_FOUND
        else:
            groups.setdefault(entry.run.receipt["reference"]["sha256"], []).append(entry)
    thumbnails: dict[str, list[Thumbnail]] = {}
    for members in groups.values():
        prepared = sources.prepared(members[0].run.receipt)
        outputs = {entry.run.submission: sources.outputs(entry.run.receipt) for entry in members}
        try:
            thumbnails.update(write_gallery(board, board_folder, prepared, members, outputs))
        except (PrepareError, OSError, ValueError) as error:  # e.g. a mask changed since scoring
            log.warning("no case gallery for board %s: %s", board.key, error)
            for entry in members:  # the thumbnails drawn before the failure, in the site being built
                shutil.rmtree(board_folder / entry_folder(entry) / GALLERY, ignore_errors=True)
                reasons[entry.run.submission] = UNREADABLE
    return thumbnails, reasons


def write_gallery(board: Board, board_folder: Path, prepared: Prepared, members: Sequence[BoardEntry],
                  outputs: Mapping[str, RunRecord | None]) -> dict[str, list[Thumbnail]]:
    """Draw every case of ``prepared`` for the entries ``members``; return the thumbnails by entry slug.

    ``outputs`` maps an entry's slug to its run folder (None when not found: the reference only
    is drawn). One case is read at a time and drawn for all entries, so memory stays at one volume.
    """
    spec = board.spec
    thumbnails: dict[str, list[Thumbnail]] = {entry.run.submission: [] for entry in members}
    per_case = {entry.run.submission: entry.run.per_case.set_index("case_id") for entry in members}
    for case_id in prepared.reference.case_ids:
        picture = _case_picture(spec, prepared, case_id)
        for entry in members:
            slug = entry.run.submission
            record = outputs.get(slug)
            row = per_case[slug].loc[case_id] if case_id in per_case[slug].index else None
            prediction = (_prediction_slice(record, case_id, picture) if record is not None
                          and spec.kind == "segmentation" else None)
            png = plots.case_png(picture.image, picture.aspect, picture.reference, prediction,
                                 window=picture.window)
            name = f"{slugify(case_id)}.png"
            write_bytes(board_folder / entry_folder(entry) / GALLERY / name, png)
            thumbnails[slug].append(Thumbnail(
                case_id=case_id, src=f"{GALLERY}/{name}", width=plots.THUMBNAIL_PX,
                height=plots.THUMBNAIL_PX, caption=_caption(spec, picture, row, record is not None),
                status=str(row["status"]) if row is not None else "not scored"))
    return thumbnails


@dataclass(frozen=True)
class _Picture:
    image: np.ndarray
    """The slice as (rows, columns), downsampled for the thumbnail."""
    aspect: float
    """Row spacing over column spacing (pixel height / width)."""
    reference: np.ndarray | None
    slice_index: int | None
    slices: int
    area_mm2: float | None
    window: tuple[float, float]
    step: int
    """The downsampling stride, applied to the prediction too."""


def _case_picture(spec, prepared: Prepared, case_id: str) -> _Picture:
    """The slice of ``case_id`` to show (largest reference area), with its reference contour mask."""
    volume, header, _ = read_volume(prepared.images[case_id])
    zooms = [float(z) for z in header.get_zooms()[:3]] + [1.0] * 3
    reference, index, area = None, None, None
    data = np.asarray(volume)
    slices = data.shape[2] if data.ndim == 3 else 1
    if spec.kind == "segmentation":
        record = prepared.reference.cases.set_index("case_id").loc[case_id]
        mask, _, _ = read_reference_mask(prepared.reference.mask_path(case_id), record["mask_sha256"])
        mask = np.asarray(mask).reshape(data.shape[:2] + (slices,)) > 0
        per_slice = mask.sum(axis=(0, 1))
        index = int(np.argmax(per_slice)) if per_slice.any() else slices // 2
        area = float(per_slice[index]) * zooms[0] * zooms[1]
        reference = mask[:, :, index].T
    index = index if index is not None else slices // 2
    image = (data[:, :, index] if data.ndim == 3 else data).T.astype(np.float32)
    step = max(1, math.ceil(max(image.shape) / plots.MAX_SLICE_PX))
    window = CT_WINDOW if spec.modality == "CT" else tuple(float(v) for v in np.percentile(image, [1, 99]))
    return _Picture(image[::step, ::step], zooms[1] / zooms[0],
                    None if reference is None else reference[::step, ::step],
                    index if slices > 1 else None, slices, area, window, step)


def _prediction_slice(record: RunRecord, case_id: str, picture: _Picture) -> np.ndarray | None:
    if case_id not in record.by_case or record.status(case_id).status != "ok":
        return None
    try:
        data, _, _ = read_volume(record.mask_path(case_id))
    except (OSError, ValueError) as error:
        log.warning("%s: prediction not drawn: %s", record.mask_path(case_id), error)
        return None
    data = np.asarray(data)
    index = picture.slice_index or 0
    if data.ndim == 3 and index < data.shape[2]:
        data = data[:, :, index]
    elif data.ndim != 2:
        return None
    return (data.T > 0)[::picture.step, ::picture.step]


def _caption(spec, picture: _Picture, row, found: bool) -> str:
    parts = []
    if row is not None:
        value = row.get(spec.primary_key)
        if isinstance(value, int | float) and math.isfinite(value):
            parts.append(f"{spec.primary_key} {value:.3f}")
        if row["status"] != "ok":
            parts.append(f"{row['status']}: {row.get('reason') or ''}".rstrip(": "))
    if spec.kind == "segmentation":
        if picture.slice_index is not None:
            parts.append(f"axial slice {picture.slice_index + 1} of {picture.slices}")
        parts.append(f"reference {picture.area_mm2 / 100:.1f} cm²" if picture.area_mm2
                     else "empty reference (middle slice)")
        if not found:
            parts.append("prediction not found")
    else:
        for head in spec.heads:
            if row is not None and head.name in row.index:
                truth, predicted = (_label(row.get(key)) for key in (head.name, f"{head.name}_pred"))
                parts.append(f"{head.name}: reference {truth}, predicted {predicted}")
    return " · ".join(str(p) for p in parts)


def _label(value: Any) -> str:
    """A class label for a caption; "none" where the case has no label (read as NaN)."""
    return "none" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def gallery_href(entry: BoardEntry) -> str:
    """Link from the entry page to its gallery page."""
    return str(PurePosixPath(entry_folder(entry).name) / PAGE)
