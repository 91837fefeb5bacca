"""Stage 3, prepare: one split of a pinned split -> a container input tree and a separate reference.

Modules: :mod:`~bench.prepare.caseids` (opaque case ids keyed with a per-download secret salt),
:mod:`~bench.prepare.images` (DICOM -> NIfTI, checked against the pinned fingerprint and
cached by it), :mod:`~bench.prepare.nifti` (the NIfTI conventions), :mod:`~bench.prepare.materialize`
(writing ``OUT/input`` and ``OUT/reference`` atomically) and :mod:`~bench.prepare.reference`
(the reference as scoring reads it, with its hash).

Contract with the next stages: ``OUT/input`` (``cases.json``, ``task.json``,
``images/<case_id>.nii.gz``) holds no label and is all a submission sees (runners);
``OUT/reference`` is read only through :func:`~bench.prepare.reference.read_reference` (scoring).
"""
