"""Stage 1, data: a RICORD download (DICOM, MD.ai export, clinical sheets) -> a manifest.

Modules: :mod:`bench.data.dicom` (index headers by UID, load CT series and radiographs),
:mod:`bench.data.mdai` (the MD.ai export JSON, polygon rasterization, reader combination),
:mod:`bench.data.clinical` (the clinical spreadsheets), :mod:`bench.data.ricord` (a download ->
manifest, case-level loading), :mod:`bench.data.manifest` (the manifest table) and
:mod:`bench.data.synth` (the synthetic collection in the real on-disk formats).

This package holds the only parser of the MD.ai export. Contract with the next stage (splits):
the manifest (one row per case, keyed by UIDs read from headers) and its report; it imports no
later stage.
"""
