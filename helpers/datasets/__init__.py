"""Data sets: generated DICOM data (offline default), the registry of real public sets, downloads,
loaders that return tidy tables, and patient-level splits.

Submodules: ``generated`` (synthetic chest X-ray, cardiac MR, knee X-ray, head CT written as DICOM),
``registry`` (what each real set is, where it lives, its licence and checksum), ``download``
(checked, cached downloads), ``real`` (loaders for the real layouts), ``splits`` (patient-level
splits, folds and manifests), ``tasks`` (one table per lesson task, whatever the source).
"""
