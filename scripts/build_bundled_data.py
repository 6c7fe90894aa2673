"""Build the small real subsets shipped inside the package (helpers/datasets/bundled/) from ../shared/data.

    python scripts/build_bundled_data.py [--shared ../shared/data]

Deterministic: the same source folder gives byte-identical files. Each set's folder gets a README.md (source,
licence, citation, what was changed), a LICENSE.txt and SHA256SUMS (one line per file, as `sha256sum` writes them),
which helpers.datasets.bundled checks. Only sets whose licence allows redistribution are copied; never the RSNA
workshop images (non-commercial licence: learners download them, see the registry's rsna_ich_workshop_tm).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.datasets import real  # noqa: E402
from helpers.datasets.bundled import BUNDLED_ROOT, CHECKSUM_FILE  # noqa: E402

#: Kermany images per class in the subset (whole patients are taken until the count is reached).
KERMANY_PER_CLASS = 400
#: The real DICOM files the lessons show, from ../shared/data/dicom_samples (all MIT licensed).
DICOM_SAMPLES = {
    "nema_wg04_and_pydicom": ["CT_small.dcm", "CT1_JLSN.dcm", "MR_small.dcm", "RG1_JLSN.dcm", "RG3_J2KR.dcm",
                              "US1_UNCR.dcm", "liver.dcm", "LICENSE.pydicom-data", "LICENSE.pylibjpeg-data",
                              "README.pydicom-test_files.txt"],
    "deid_data": ["ctbrain1.dcm", "ctbrain2.dcm", "LICENSE.deid-data"],
}

CC_BY = "Creative Commons Attribution 4.0 International (CC BY 4.0): https://creativecommons.org/licenses/by/4.0/"
CC0 = "CC0 1.0 Universal (public domain dedication): https://creativecommons.org/publicdomain/zero/1.0/"

READMES = {
    "sunnybrook_lv": (
        "Sunnybrook Cardiac Data: left-ventricle contours on cine SSFP short-axis MR",
        CC0,
        "Radau P, Lu Y, Connelly K, Paul G, Dick AJ, Wright GA. Evaluation Framework for Algorithms Segmenting "
        "Short Axis Cardiac MRI. The MIDAS Journal - Cardiac MR Left Ventricle Segmentation Challenge, 2009. "
        "http://hdl.handle.net/10380/3070",
        "Four of the 45 studies (SC-HF-I-1, -2, -4, -5: heart failure with infarction), and of each only the frames "
        "an expert contoured (inner contour: LV blood pool; outer: epicardium, on about half of them). DICOM files "
        "and contour text files are unchanged; the layout is dicoms/<SCD id>/<instance>.dcm + contourfiles/"
        "<original id>/{i,o}-contours/ + link.csv, which helpers.datasets.real.load_sunnybrook reads.",
    ),
    "kermany_chest_xray": (
        "Chest X-Ray Images (Pneumonia), Kermany et al.: paediatric chest radiographs, normal vs pneumonia",
        CC_BY,
        "Kermany D, Zhang K, Goldbaum M (2018). Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images "
        "for Classification. Mendeley Data, V2. doi:10.17632/rscbjbr9sj.2. Kermany DS et al., Cell 2018;172(5):"
        "1122-1131.",
        f"A patient-level subset: whole patients drawn at random (seed 0) until {KERMANY_PER_CLASS} images of each "
        "class, so no patient is split. Images are the 224 x 224 JPEG copies (resized from the original "
        "resolution, grey stored as RGB) of ../shared/data; file names unchanged (they carry the patient).",
    ),
    "nih_chestxray14_64": (
        "NIH ChestX-ray14: frontal chest radiographs with 14 text-mined findings",
        "No restriction on use; the NIH Clinical Center asks that it be acknowledged (see the citation). "
        "https://nihcc.app.box.com/v/ChestXray-NIHCC",
        "Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM. ChestX-ray8: Hospital-scale Chest X-ray Database and "
        "Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax Diseases. CVPR 2017. "
        "Data: NIH Clinical Center.",
        "800 of the 112,120 images (train 300 + 300, valid 100 + 100 normal / abnormal), resized to 64 x 64 PNG; "
        "labels.csv joins each file to the 14 findings, patient id, view, age and sex of NIH's label file.",
    ),
    "dicom_samples": (
        "Real DICOM files of several kinds (CT, MR, CR, US, SEG; uncompressed, JPEG-LS, JPEG 2000) and two head CT "
        "screen captures carrying fake patient data, for de-identification",
        "MIT (pydicom-data, pylibjpeg-data, deid-data); the licence files are beside the images",
        "pydicom-data and pylibjpeg-data (github.com/pydicom; most images from the NEMA WG04 compression test "
        "set), deid-data 0.0.20 (github.com/pydicom/deid).",
        "A selection of files, unchanged.",
    ),
}


def sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(folder: Path) -> None:
    """README.md, LICENSE.txt and SHA256SUMS for one bundled set."""
    title, licence, citation, changes = READMES[folder.name]
    (folder / "README.md").write_text(
        f"# {title}\n\nShipped with medimg-helpers so that the lessons run on real images offline.\n\n"
        f"**Licence:** {licence}\n\n**Cite:** {citation}\n\n**What was changed:** {changes}\n\n"
        f"`SHA256SUMS` lists the SHA-256 of every file; `helpers.datasets.bundled.verify(\"{folder.name}\")` "
        "checks them.\n", encoding="utf-8")
    (folder / "LICENSE.txt").write_text(f"{title}\n\nLicence: {licence}\n\nCitation: {citation}\n", encoding="utf-8")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE)
    lines = [f"{sha256(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    (folder / CHECKSUM_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def sunnybrook(shared: Path, out: Path) -> None:
    source = shared / "sunnybrook_lv"
    table = real.load_sunnybrook(source)
    for row in table.itertuples():
        for path in (row.path, row.inner_contour, row.outer_contour):
            if isinstance(path, str):
                target = out / Path(path).relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    shutil.copyfile(source / "link.csv", out / "link.csv")


def kermany(shared: Path, out: Path) -> None:
    source = shared / "chest_xray_kermany_224"
    table = real.load_kermany(source)
    rng = np.random.default_rng(0)
    for label, rows in table.groupby("label"):
        patients = sorted(rows.patient_id.unique())
        chosen, count = [], 0
        for patient in rng.permutation(patients):
            if count >= KERMANY_PER_CLASS:
                break
            n = int((rows.patient_id == patient).sum())
            if count + n > KERMANY_PER_CLASS + 5:  # keep the class near its target: skip very large patients
                continue
            chosen.append(patient)
            count += n
        for path in rows[rows.patient_id.isin(chosen)].path:
            target = out / label / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def nih(shared: Path, out: Path) -> None:
    shutil.copytree(shared / "chest_xray_nih1000_64", out, dirs_exist_ok=True)


def dicom_samples(shared: Path, out: Path) -> None:
    for folder, names in DICOM_SAMPLES.items():
        for name in names:
            target = out / folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shared / "dicom_samples" / folder / name, target)


BUILDERS = {"sunnybrook_lv": sunnybrook, "kermany_chest_xray": kermany, "nih_chestxray14_64": nih,
            "dicom_samples": dicom_samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("only", nargs="*", help="only these sets")
    args = parser.parse_args()
    shared = Path(args.shared)
    total = 0
    for name, build in BUILDERS.items():
        if args.only and name not in args.only:
            continue
        out = BUNDLED_ROOT / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        build(shared, out)
        write_manifest(out)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        total += size
        print(f"{name}: {sum(1 for p in out.rglob('*') if p.is_file())} files, {size / 2**20:.1f} MB")
    print(f"total {total / 2**20:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
