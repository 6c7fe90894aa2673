"""The real subsets shipped inside the package: checksummed, licensed, read by the loaders, inside the wheel, and
never anything of the RSNA workshop's (non-commercial licence: learners download those)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers.datasets import bundled, real, registry
from helpers.datasets.download import fetch
from helpers.errors import ChecksumMismatch, DatasetError

ROOT = Path(__file__).resolve().parents[1]


def test_every_bundled_set_is_registered_checksummed_licensed_and_small():
    total = 0
    for name in bundled.BUNDLED:
        folder = bundled.bundled_dir(name)
        info = registry.get_dataset(name)
        assert info.bundled == name and not info.downloadable and info.licence and info.citation
        files = info.bundled_files()
        assert files == bundled.checksums(name) and len(files) > 3
        assert {"README.md", "LICENSE.txt"} <= set(files)
        readme = (folder / "README.md").read_text()
        assert "Licence:" in readme and "Cite:" in readme and "What was changed:" in readme
        assert bundled.verify(name) == len(files)
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(
            [*files, bundled.CHECKSUM_FILE])  # nothing unlisted
        total += sum((folder / rel).stat().st_size for rel in files)
    assert total <= 40 * 2**20, f"bundled data is {total / 2**20:.1f} MB, over the 40 MB budget"


def test_loaders_read_the_bundled_sets():
    sunny = real.load_sunnybrook(fetch("sunnybrook_lv"))
    assert len(sunny) == 74 and sunny.inner_contour.notna().all() and sunny.patient_id.nunique() == 4
    image, mask = real.sunnybrook_image_and_mask(sunny.iloc[0])
    assert image.shape == (256, 256) and 100 < mask.sum() < 5000
    kermany = real.load_kermany(fetch("kermany_chest_xray"))
    counts = kermany.groupby("label").size().to_dict()
    assert counts == {"NORMAL": 400, "PNEUMONIA": 401}
    assert kermany.groupby("patient_id").label.nunique().max() == 1  # whole patients, one class each
    nih = real.load_nih_subset(fetch("nih_chestxray14_64"))
    assert len(nih) == 800


def test_bundled_dicom_samples_decode():
    from helpers.dicom import pixels, read_dicom

    folder = fetch("dicom_samples")
    files = sorted(folder.rglob("*.dcm"))
    assert len(files) == 9
    for path in files:
        ds = read_dicom(path)
        if path.name != "liver.dcm":  # a DICOM SEG: its frames are segments, read with highdicom
            assert pixels(ds, allow_rgb=True).size > 0, path.name  # the PHI captures and the US are colour


def test_a_changed_or_missing_file_is_named(tmp_path, monkeypatch):
    copy = tmp_path / "bundled"
    shutil.copytree(bundled.BUNDLED_ROOT / "dicom_samples", copy / "dicom_samples")
    monkeypatch.setattr(bundled, "BUNDLED_ROOT", copy)
    (copy / "dicom_samples" / "nema_wg04_and_pydicom" / "CT_small.dcm").write_bytes(b"edited")
    (copy / "dicom_samples" / "deid_data" / "ctbrain1.dcm").unlink()
    with pytest.raises(ChecksumMismatch, match=r"(?s)ctbrain1.dcm: missing.*CT_small.dcm: changed.*Reinstall"):
        fetch("dicom_samples")
    with pytest.raises(DatasetError, match="bundled sets: dicom_samples"):
        bundled.bundled_dir("rsna_ich_workshop")


@pytest.mark.slow
def test_the_wheel_carries_every_bundled_file_and_its_licence(tmp_path):
    """What a Colab `pip install` gets: the wheel built from this tree holds each set's files, README and licence."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path), str(ROOT)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' in-tree scratch folder
    (wheel,) = tmp_path.glob("medimg_helpers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in bundled.BUNDLED:
        prefix = f"helpers/datasets/bundled/{name}/"
        expected = {prefix + rel for rel in bundled.checksums(name)} | {prefix + bundled.CHECKSUM_FILE}
        assert expected <= names, sorted(expected - names)[:5]
    assert not [n for n in names if n.endswith(".tm")]
    assert {"helpers/models/ct_features.pt", "helpers/models/ct_features.json"} <= names  # the workshop's extractor


def _repository_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [ROOT / p for p in listed if p and (ROOT / p).is_file()]


def test_no_teachable_machine_project_is_in_the_repository():
    assert not [p for p in _repository_files() if p.suffix.lower() == ".tm"]


def test_no_rsna_workshop_image_is_in_the_repository(shared_data):
    """Every file of ../shared/data/rsna_ich_workshop, and every image inside its .tm and .zip files, by SHA-256:
    none may be in the repository (their licence is non-commercial research and education only)."""
    source = shared_data("rsna_ich_workshop")
    forbidden = set()
    for path in source.rglob("*"):
        if path.is_file():
            forbidden.add(hashlib.sha256(path.read_bytes()).hexdigest())
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as z:
                    forbidden |= {hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if not n.endswith("/")}
    assert len(forbidden) >= 100  # 60 JPEGs, 36 PNGs, the .tm and zips and their members
    found = [p.relative_to(ROOT) for p in _repository_files()
             if p.stat().st_size < 50 * 2**20 and hashlib.sha256(p.read_bytes()).hexdigest() in forbidden]
    assert not found, f"RSNA workshop files in the repository: {found}"
