"""Small real data sets shipped inside the package, so that lessons named after real data run on it offline, on
Colab too (a ``pip install`` brings them): Sunnybrook cardiac MR with contours, a patient-level subset of the
Kermany chest X-rays, the NIH ChestX-ray14 64 px subset and real DICOM samples.

Each set is a folder of ``helpers/datasets/bundled/`` with a ``README.md`` (source, licence, citation, what was
changed), a ``LICENSE.txt`` and ``SHA256SUMS`` (the SHA-256 of every file, as ``sha256sum`` writes it). The registry
lists them (:data:`helpers.datasets.registry.REGISTRY`); ``scripts/build_bundled_data.py`` builds them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from helpers.errors import ChecksumMismatch, DatasetError

#: Where the bundled sets live, inside the installed package.
BUNDLED_ROOT = Path(__file__).resolve().parent / "bundled"
#: The checksum list in each set's folder.
CHECKSUM_FILE = "SHA256SUMS"
#: The bundled sets, by folder name.
BUNDLED = ("dicom_samples", "kermany_chest_xray", "nih_chestxray14_64", "sunnybrook_lv")


def bundled_dir(name: str, verify_files: bool = False) -> Path:
    """The folder of the bundled set ``name`` (one of :data:`BUNDLED`); with ``verify_files``, every file is first
    checked against its SHA-256 (:func:`verify`)."""
    if name not in BUNDLED:
        raise DatasetError(f"No bundled data set called {name!r}; bundled sets: {', '.join(BUNDLED)}.")
    folder = BUNDLED_ROOT / name
    if not (folder / CHECKSUM_FILE).is_file():
        raise DatasetError(f"The bundled set {name} is missing from {BUNDLED_ROOT}: the package was installed "
                           "without its data. Reinstall it from the repository (pip install .) or a wheel.")
    if verify_files:
        verify(name)
    return folder


def checksums(name: str) -> dict[str, str]:
    """``{relative path: SHA-256}`` of every file of the bundled set ``name``, from its ``SHA256SUMS``."""
    text = (bundled_dir(name) / CHECKSUM_FILE).read_text(encoding="utf-8")
    found = {}
    for line in text.splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            found[rel.lstrip("*")] = digest
    return found


def verify(name: str) -> int:
    """Check every file of the bundled set ``name`` against ``SHA256SUMS``; return how many were checked.

    Raises ChecksumMismatch naming each missing or changed file (an edited or truncated copy)."""
    folder = bundled_dir(name)
    problems = []
    expected = checksums(name)
    for rel, digest in expected.items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{rel}: changed (SHA-256 differs from {CHECKSUM_FILE})")
    if problems:
        raise ChecksumMismatch(f"The bundled set {name} in {folder} is not as shipped:\n  " + "\n  ".join(problems)
                               + "\nReinstall medimg-helpers (pip install --force-reinstall) to restore it.")
    return len(expected)
