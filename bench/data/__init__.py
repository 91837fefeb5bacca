"""The RICORD data layer: DICOM headers and series, MD.ai exports, a download -> manifest.

Modules: :mod:`bench.data.dicom` (index headers by UID, load CT series and radiographs),
:mod:`bench.data.mdai` (the MD.ai export JSON, polygon rasterization, reader combination),
:mod:`bench.data.clinical` (the clinical spreadsheets), :mod:`bench.data.ricord` (a download ->
manifest, case-level loading), :mod:`bench.data.manifest` (the manifest table) and
:mod:`bench.data.synth` (the synthetic collection in the real on-disk formats).
"""
