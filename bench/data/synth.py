"""The synthetic RICORD collection, written in the real on-disk formats.

``synthesize(out_dir, seed=...)`` writes what a TCIA download of 1a + 1b + 1c looks like,
so that the demo and the tests go through the real ingest path:

- ``metadata.csv`` (NBIA columns) and ``MIDRC-RICORD-1A|1B|1C/<PatientID>/<study>/<series>/1-NNN.dcm``
  in the NBIA retriever's "descriptive" layout; CT with real geometry tags and HU phantoms
  (body, lungs, vessels, ground-glass ~-700 HU and consolidation -100..+40 HU lesions),
  extra series that ingest must ignore (scout, coronal reformat), one series whose file
  names and instance numbers are shuffled against position, alternating slice directions;
  CR/DX radiographs, MONOCHROME1 and MONOCHROME2, some studies with a lateral view numbered
  before the frontal one. 1c is written in the older retriever layout (no ``NA`` StudyID field,
  empty descriptions omitted), 1a/1b in the newer; 1a spans the four real sites, with the
  short counter UIDs of 440808 and 660042 (``...474.440808.569``: the folder suffix ``8.569``).
- ``annotations/MIDRC-RICORD-1a_annotations_labelgroup_all_2020-Dec-8.json`` (freeform
  polygons traced slice by slice from the true lesions, one or two readers, study labels,
  a few null-data rows) and
  ``annotations/1c_mdai_rsna_project_MwBeK3Nr_annotations_labelgroup_all_2021-01-08-164102.json``
  (the real 1c structure: reader groups Tiger, Bear, Dragon and, on a few studies, Lion; an
  Adjudication group; a Default group with two users; eight labels per group including
  ``Invalid Study``; the real 1c annotation keys; one study per reading scenario of
  :data:`bench.data.synth_plan.SCENARIOS_1C`).
- ``clinical/*.xlsx`` and ``.csv`` with RICORD's column names (``Anon MRN``, ``Anon Study UID``,
  ``Result``, ``Age``, ``Sex``, ...).
- ``truth/<StudyInstanceUID>.npz``: the generator's true lesion masks in array order, and
  ``truth/1c_reading.json``: what the reading protocol must give each 1c study (tests only;
  nothing in the harness reads them).

Deterministic: UIDs are derived from the seed under the RSNA root
``1.2.826.0.1.3680043.10.474``, dates are fixed, and no wall-clock value is written, so the
same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.synth_dicom import CtSeriesWriter, write_radiograph
from bench.data.synth_formats import (
    ANNOTATIONS_1A,
    ANNOTATIONS_1C,
    APPEARANCE_1A,
    LABELS_1C,
    ExportBuilder,
    MetadataWriter,
    file_name,
    series_dir,
    write_clinical,
)
from bench.data.synth_phantom import (
    LESION_LABELS,
    ct_slice,
    radiograph,
    random_vessels,
    trace_polygons,
)
from bench.data.synth_plan import (
    ADJUDICATION_GROUP,
    DEFAULT_GROUP,
    EXTRA_READER_1C,
    READERS_1C,
    UID_ROOT,
    SeedIds,
    plan_1a,
    plan_1c,
    plan_storage,
    plan_studies,
)
from bench.errors import DataError
from bench.io import atomic_directory

__all__ = ["ANNOTATIONS_1A", "ANNOTATIONS_1C", "SIZES", "UID_ROOT", "SizePreset", "SynthReport", "synthesize"]

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SizePreset:
    """Matrix sizes and case counts of one synthetic size."""

    ct_shape: tuple[int, int, int]
    cxr_shape: tuple[int, int]
    n_1a: int
    n_1b: int
    n_1c: int
    slice_mm: tuple[float, ...]
    noise_hu: float
    fov_mm: float = 350.0


#: The 1a sites (RICORD's: 440808 and SITE2 contributed to 1a only).
SITES_1A = ["419639", "440808", "660042", "SITE2"]
CONFOUNDING = ("real", "none", "scanner")
#: The two scanners of ``confounding="scanner"``: one per collection, so the header gives the label away.
SCANNERS = {
    "MIDRC-RICORD-1A": {"manufacturer": "SYNTHETIC VENDOR A", "model": "Model A64", "kernel": "B30f"},
    "MIDRC-RICORD-1B": {"manufacturer": "SYNTHETIC VENDOR B", "model": "Model B16", "kernel": "STANDARD"},
}

SIZES = {
    "tiny": SizePreset(
        ct_shape=(12, 48, 48),
        cxr_shape=(64, 64),
        n_1a=6,
        n_1b=4,
        n_1c=12,
        slice_mm=(10.0, 12.0, 8.0),
        noise_hu=15.0,
    ),
    "small": SizePreset(
        ct_shape=(24, 64, 64),
        cxr_shape=(128, 128),
        n_1a=24,
        n_1b=24,
        n_1c=60,
        slice_mm=(10.0, 12.0, 8.0),
        noise_hu=15.0,
    ),
    "full": SizePreset(
        ct_shape=(220, 512, 512),
        cxr_shape=(1024, 1024),
        n_1a=3,
        n_1b=1,
        n_1c=4,
        slice_mm=(1.25, 1.5, 1.0),
        noise_hu=20.0,
    ),
}


@dataclass(frozen=True)
class SynthReport:
    """What :func:`synthesize` wrote."""

    out_dir: Path
    seed: int
    size: str
    studies: dict
    n_dicom_files: int
    annotations: tuple[Path, ...]
    clinical: tuple[Path, ...]
    truth_dir: Path


def _stored(hu: np.ndarray, intercept: float, signed: bool) -> np.ndarray:
    values = np.round(hu - intercept)
    if signed:
        return np.clip(values, -32768, 32767).astype(np.int16)
    return np.clip(values, 0, 65535).astype(np.uint16)


def _write_ct(
    writer: MetadataWriter,
    ids: SeedIds,
    study: dict,
    preset: SizePreset,
    rng: np.random.Generator,
    index: int,
) -> dict:
    """Write a CT study (axial series + extras); return the truth and the slice SOP UIDs."""
    nz, ny, nx = preset.ct_shape
    pixel_mm = preset.fov_mm / nx
    slice_mm = preset.slice_mm[index % len(preset.slice_mm)]
    signed = study["signed"]
    intercept = 0.0 if signed else -1024.0
    origin = (
        -preset.fov_mm / 2 + pixel_mm / 2,
        -preset.fov_mm / 2 + 20.0 + pixel_mm / 2,
        -float(rng.uniform(100, 300)),
    )
    tag = study["collection"][-2:]
    series = {
        "series_uid": ids.uid(study["site"], tag, "series", study["study_uid"], 2),
        "number": 2,
        "description": "ROUTINE CHEST NON-CON",
        "modality": "CT",
    }
    directory = writer.root / series_dir(study, series)
    directory.mkdir(parents=True)
    vessels = random_vessels(rng)
    lesions = study.get("lesions", [])
    sop_uids = [ids.uid(study["site"], tag, "sop", series["series_uid"], k) for k in range(nz)]
    # Instance numbers: head-first listing (instance 1 = top) for odd studies, one shuffled series.
    numbers = np.arange(1, nz + 1)
    if index % 2 == 1:
        numbers = numbers[::-1]
    if study.get("shuffled"):
        numbers = rng.permutation(numbers)
    truth = {label: np.zeros((nz, ny, nx), dtype=bool) for label in LESION_LABELS}
    volume_rows = np.zeros((nz, nx), dtype=np.float32)
    frame_uid = ids.uid(study["site"], tag, "frame", study["study_uid"])
    n_bytes = 0
    coronal_planes = np.linspace(ny * 0.3, ny * 0.7, 8).astype(int)
    coronal = np.zeros((len(coronal_planes), nz, nx), dtype=np.float32)
    axial = CtSeriesWriter(
        study,
        series,
        orientation=(1, 0, 0, 0, 1, 0),
        spacing_yx=(pixel_mm, pixel_mm),
        thickness_mm=slice_mm,
        intercept=intercept,
        signed=signed,
        shape_yx=(ny, nx),
        image_type="ORIGINAL\\PRIMARY\\AXIAL",
        frame_uid=frame_uid,
    )
    for k in range(nz):
        hu, slice_truth = ct_slice((k + 0.5) / nz, (ny, nx), vessels, lesions, rng, noise_hu=preset.noise_hu)
        for label, mask in slice_truth.items():
            truth[label][k] = mask
        volume_rows[k] = hu.mean(axis=0)
        coronal[:, k, :] = hu[coronal_planes, :]
        position = (origin[0], origin[1], origin[2] + k * slice_mm)
        n_bytes += axial.write(
            directory / file_name(int(numbers[k]), nz),
            sop_uid=sop_uids[k],
            instance=int(numbers[k]),
            stored=_stored(hu, intercept, signed),
            position=position,
        )
    writer.series_done(study, series, "1.2.840.10008.5.1.4.1.1.2", nz, n_bytes)
    top = origin[2] + (nz - 1) * slice_mm
    if index % 2 == 0:  # a scout (localizer): AP projection, coronal orientation
        scout = {
            "series_uid": ids.uid(study["site"], tag, "series", study["study_uid"], 1),
            "number": 1,
            "description": "SCOUT",
            "modality": "CT",
        }
        sdir = writer.root / series_dir(study, scout)
        sdir.mkdir(parents=True)
        scout_writer = CtSeriesWriter(
            study,
            scout,
            orientation=(1, 0, 0, 0, 0, -1),
            spacing_yx=(slice_mm, pixel_mm),
            thickness_mm=slice_mm,
            intercept=intercept,
            signed=signed,
            shape_yx=(nz, nx),
            image_type="ORIGINAL\\PRIMARY\\LOCALIZER",
            frame_uid=frame_uid,
        )
        size = scout_writer.write(
            sdir / file_name(1, 1),
            sop_uid=ids.uid(study["site"], tag, "sop", scout["series_uid"], 0),
            instance=1,
            stored=_stored(volume_rows[::-1], intercept, signed),
            position=(origin[0], 0.0, top),
        )
        writer.series_done(study, scout, "1.2.840.10008.5.1.4.1.1.2", 1, size)
    if index % 3 == 0:  # a coronal reformat
        cor = {
            "series_uid": ids.uid(study["site"], tag, "series", study["study_uid"], 3),
            "number": 3,
            "description": "COR 3X3",
            "modality": "CT",
        }
        cdir = writer.root / series_dir(study, cor)
        cdir.mkdir(parents=True)
        size = 0
        cor_writer = CtSeriesWriter(
            study,
            cor,
            orientation=(1, 0, 0, 0, 0, -1),
            spacing_yx=(slice_mm, pixel_mm),
            thickness_mm=3.0,
            intercept=intercept,
            signed=signed,
            shape_yx=(nz, nx),
            image_type="DERIVED\\SECONDARY\\REFORMATTED",
            frame_uid=frame_uid,
        )
        for p, plane in enumerate(coronal_planes):
            size += cor_writer.write(
                cdir / file_name(p + 1, len(coronal_planes)),
                sop_uid=ids.uid(study["site"], tag, "sop", cor["series_uid"], p),
                instance=p + 1,
                stored=_stored(coronal[p][::-1], intercept, signed),
                position=(origin[0], origin[1] + plane * pixel_mm, top),
            )
        writer.series_done(study, cor, "1.2.840.10008.5.1.4.1.1.2", len(coronal_planes), size)
    affine = np.eye(4)
    affine[:3, 0] = (0, 0, slice_mm)
    affine[:3, 1] = (0, pixel_mm, 0)
    affine[:3, 2] = (pixel_mm, 0, 0)
    affine[:3, 3] = origin
    return {
        "series_uid": series["series_uid"],
        "sop_uids": sop_uids,
        "truth": truth,
        "spacing_mm": (slice_mm, pixel_mm, pixel_mm),
        "affine": affine,
        "shape": (ny, nx),
    }


def _write_cxr(
    writer: MetadataWriter,
    ids: SeedIds,
    study: dict,
    preset: SizePreset,
    rng: np.random.Generator,
    index: int,
) -> None:
    site = study["site"]
    modality = {"419639": "CR", "440808": "DX"}.get(site, "CR" if index % 4 < 2 else "DX")
    photometric = "MONOCHROME1" if index % 2 == 0 else "MONOCHROME2"
    pixel_mm = 400.0 / preset.cxr_shape[1]
    opacities = {"": 0, "mild": 1, "moderate": 3, "severe": 5}[study["grade"]]
    frontal = [("AP" if index % 3 else "PA", False)]
    # Some studies also hold a lateral view, numbered before the frontal one: ingest must skip it.
    views = [("LL", True), *frontal] if index % 5 == 1 else frontal
    for number, (view, lateral) in enumerate(views, start=1):
        series = {
            "series_uid": ids.uid(site, "1C", "series", study["study_uid"], number),
            "number": number,
            "description": "" if site == "SITE2" else view,
            "modality": modality,
        }
        directory = writer.root / series_dir(study, series)
        directory.mkdir(parents=True)
        density = radiograph(preset.cxr_shape, rng, opacities=0 if lateral else opacities, lateral=lateral)
        size = write_radiograph(
            directory / file_name(1, 1),
            study,
            series,
            sop_uid=ids.uid(site, "1C", "sop", series["series_uid"], 0),
            density=density,
            photometric=photometric,
            spacing_yx=(pixel_mm, pixel_mm),
            view=view,
        )
        sop_class = "1.2.840.10008.5.1.4.1.1.1" if modality == "CR" else "1.2.840.10008.5.1.4.1.1.1.1"
        writer.series_done(study, series, sop_class, 1, size)


def synthesize(
    out_dir: str | os.PathLike, *, seed: int, size: str = "small", confounding: str = "real",
    progress: Progress | None = None,
) -> SynthReport:
    """Write the synthetic RICORD collection to ``out_dir`` (which must not exist or be empty).

    Parameters
    ----------
    out_dir : path
        Output folder; written atomically (a temporary folder renamed into place).
    seed : int
        Same seed, byte-identical files.
    size : {"tiny", "small", "full"}
        ``small`` (default): 24 1a + 24 1b CT studies at 64x64x24 and 60 1c radiographs at
        128x128, enough for stratified 3-way splits of every task (demo, integration
        tests). ``tiny``: 6 + 4 CT studies at 48x48x12 and 12 radiographs (fast unit tests).
        ``full``: 3 1a + 1 1b CT studies at 512x512x220 and 4 radiographs at 1024x1024
        (benchmarks).
    confounding : {"real", "none", "scanner"}
        How much the CT acquisition tells 1a (COVID-positive) from 1b (negative), for checking
        the metadata-only confound floor. ``real`` (default): as in RICORD, 1a spans four sites
        and 1b two of them. ``none``: 1b spans the same four sites. ``scanner``: as ``real``, and
        every 1a series comes from one scanner (manufacturer, model, kernel) and every 1b series
        from another.
    progress : callable, optional
        ``progress(done, total, description)`` per study.

    Raises
    ------
    DataError
        Unknown size, or ``out_dir`` exists and is not empty.
    """
    if size not in SIZES:
        raise DataError(f"unknown synthetic size {size!r}; choose one of {sorted(SIZES)}.")
    if confounding not in CONFOUNDING:
        raise DataError(f"unknown confounding {confounding!r}; choose one of {list(CONFOUNDING)}.")
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise DataError(f"{out_dir}: exists and is not empty; pass a new --out folder or delete it.")
        out_dir.rmdir()
    preset = SIZES[size]
    rng = np.random.default_rng(seed)
    ids = SeedIds(seed)
    studies_1a = plan_studies(rng, ids, "MIDRC-RICORD-1A", SITES_1A, preset.n_1a)
    sites_1b = SITES_1A if confounding == "none" else ["419639", "660042"]
    studies_1b = plan_studies(rng, ids, "MIDRC-RICORD-1B", sites_1b, preset.n_1b)
    if confounding == "scanner":
        for study in studies_1a + studies_1b:
            study["scanner"] = SCANNERS[study["collection"]]
    studies_1c = plan_studies(rng, ids, "MIDRC-RICORD-1C", ["419639", "440808", "SITE2"], preset.n_1c)
    readers_1a = [
        ("Team 1", ids.short("U", "1a", 1)),
        ("Team 2", ids.short("U", "1a", 2)),
        ("Team 1", ids.short("U", "1a", 3)),
    ]
    plan_1a(rng, studies_1a, readers_1a)
    for study in studies_1b:
        study["description"] = "CT CHEST HIGH RESOLUTION"
    plan_1c(rng, studies_1c)
    plan_storage(rng, studies_1a + studies_1b)
    total = len(studies_1a) + len(studies_1b) + len(studies_1c)
    with atomic_directory(out_dir) as tmp:
        writer = MetadataWriter(tmp)
        truth_dir = tmp / "truth"
        truth_dir.mkdir()
        export_1a = ExportBuilder(
            ids,
            "MIDRC-RICORD-1a",
            ["Team 1", "Team 2"],
            [
                *[(name, "", "", "INSTANCE", "freeform", "LOCAL") for name in LESION_LABELS],
                *[(name, name, "", "STUDY", None, "GLOBAL") for name in APPEARANCE_1A.values()],
                ("Infectious lung disease", "", "", "STUDY", None, "GLOBAL"),
                ("Emphysema", "", "", "STUDY", None, "GLOBAL"),
            ],
        )
        done = 0
        for i, study in enumerate(studies_1a + studies_1b):
            written = _write_ct(writer, ids, study, preset, rng, i)
            if study["collection"] == "MIDRC-RICORD-1A":
                _annotate_ct(export_1a, study, written, n_null=3 if i == 0 else 0)
                _save_truth(truth_dir, study, written)
            done += 1
            if progress is not None:
                progress(done, total, "writing CT studies")
        groups_1c = [DEFAULT_GROUP, READERS_1C[0], EXTRA_READER_1C, *READERS_1C[1:], ADJUDICATION_GROUP]
        export_1c = ExportBuilder(
            ids,
            "MIDRC-RICORD Release 1c - Chest x-ray (Covid+)",
            groups_1c,
            [(name, short, text, "STUDY", None, "GLOBAL") for name, short, text in LABELS_1C.values()],
            study_level=True,
        )
        users_1c = {group: [ids.short("U", "1c", group)] for group in groups_1c}
        users_1c[DEFAULT_GROUP].append(ids.short("U", "1c", DEFAULT_GROUP, 2))
        for j, study in enumerate(studies_1c):
            _write_cxr(writer, ids, study, preset, rng, j)
            _annotate_cxr(export_1c, study, users_1c)
            done += 1
            if progress is not None:
                progress(done, total, "writing radiographs")
        (truth_dir / "1c_reading.json").write_text(
            json.dumps({s["study_uid"]: {"scenario": s["scenario"], **s["expected"]} for s in studies_1c},
                       indent=1, sort_keys=True) + "\n", encoding="utf-8")
        annotations = tmp / "annotations"
        annotations.mkdir()
        for name, export in ((ANNOTATIONS_1A, export_1a), (ANNOTATIONS_1C, export_1c)):
            (annotations / name).write_text(
                json.dumps(export.document(), separators=(",", ":")) + "\n", encoding="utf-8"
            )
        clinical = tmp / "clinical"
        clinical.mkdir()
        clinical_paths = write_clinical(clinical, studies_1a + studies_1b + studies_1c)
        metadata = pd.DataFrame(writer.metadata).sort_values("File Location", kind="stable")
        (tmp / "metadata.csv").write_text(metadata.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
        n_files = writer.n_files
    return SynthReport(
        out_dir=out_dir,
        seed=seed,
        size=size,
        studies={
            "MIDRC-RICORD-1A": len(studies_1a),
            "MIDRC-RICORD-1B": len(studies_1b),
            "MIDRC-RICORD-1C": len(studies_1c),
        },
        n_dicom_files=n_files,
        annotations=(out_dir / "annotations" / ANNOTATIONS_1A, out_dir / "annotations" / ANNOTATIONS_1C),
        clinical=tuple(out_dir / "clinical" / p.name for p in clinical_paths),
        truth_dir=out_dir / "truth",
    )


def _annotate_ct(export: ExportBuilder, study: dict, written: dict, *, n_null: int) -> None:
    export.studies.append({"StudyInstanceUID": study["study_uid"], "number": len(export.studies) + 1})
    series_uid, sop_uids, shape = written["series_uid"], written["sop_uids"], written["shape"]
    for r, (group, reader) in enumerate(study["readers"]):
        appearance = study["appearance"]
        if r == 1 and len(export.studies) % 4 == 0:  # a second reader who disagrees: tied study
            appearance = "indeterminate" if appearance != "indeterminate" else "typical"
        export.add(group, APPEARANCE_1A[appearance], reader, study)
        if r == 0 and len(export.studies) % 5 == 0:
            export.add(group, "Emphysema", reader, study)
        for label, mask in written["truth"].items():
            slices = np.flatnonzero(mask.any(axis=(1, 2)))
            if r == 1 and len(slices) >= 3:  # the second reader misses the end slices of each label
                slices = slices[1:-1]
            for k in slices:
                for vertices in trace_polygons(mask[k]):
                    export.add(
                        group,
                        label,
                        reader,
                        study,
                        series_uid=series_uid,
                        sop_uid=sop_uids[k],
                        data={"vertices": vertices.tolist()},
                        shape=shape,
                    )
    group, reader = study["readers"][0]
    for k in range(n_null):
        export.add(
            group,
            LESION_LABELS[0],
            reader,
            study,
            series_uid=series_uid,
            sop_uid=sop_uids[k],
            data=None,
            shape=shape,
        )


def _save_truth(truth_dir: Path, study: dict, written: dict) -> None:
    labels = sorted(label for label, mask in written["truth"].items() if mask.any())
    stack = (
        np.stack([written["truth"][label] for label in labels])
        if labels
        else np.zeros((0, len(written["sop_uids"]), *written["shape"]), dtype=bool)
    )
    np.savez_compressed(
        truth_dir / f"{study['study_uid']}.npz",
        labels=np.array(labels, dtype=str),
        masks=stack,
        union=stack.any(axis=0)
        if labels
        else np.zeros((len(written["sop_uids"]), *written["shape"]), dtype=bool),
        sop_uids=np.array(written["sop_uids"], dtype=str),
        series_uid=np.array(written["series_uid"]),
        spacing_mm=np.array(written["spacing_mm"]),
        affine_lps=written["affine"],
        readers=np.array([reader for _, reader in study["readers"]], dtype=str),
    )


def _annotate_cxr(export: ExportBuilder, study: dict, users: dict[str, list[str]]) -> None:
    """The study's labels group by group, in the plan's order (later labels are newer)."""
    export.studies.append({"StudyInstanceUID": study["study_uid"], "number": len(export.studies) + 1})
    for group, labels in study["labels"].items():
        for k, key in enumerate(labels):
            group_users = users[group]
            export.add(group, LABELS_1C[key][0], group_users[k % len(group_users)], study)
