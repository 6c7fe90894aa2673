"""The real public data sets the lessons can use: where each lives, its licence, citation and checksums.

One frozen :class:`DatasetInfo` per data set, each listing its :class:`RemoteFile` downloads.
:mod:`helpers.datasets.download` fetches and verifies them; :mod:`helpers.datasets.real` reads the
folders they unpack to.

Checksums. ``RemoteFile.known_hash`` is in pooch's notation: a bare 64-digit hex string is a SHA-256,
``"md5:<hex>"`` is an MD5 that the *publisher* lists (used only where no SHA-256 is published; the
download also computes and logs the SHA-256), and ``"gitblob:<40 hex>"`` is the git blob id a repository lists for
the file (the SHA-1 of ``b"blob <size>\\0"`` followed by the content), used where that is all that is known. ``None`` means no published checksum could be found:
nothing is invented, and :func:`helpers.datasets.download.fetch` refuses such a file unless it is
called with ``allow_unverified=True`` (it then logs the SHA-256 it computed so it can be added here).
``size`` (bytes) is ``None`` unless the publisher states it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from helpers.errors import DatasetError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MD5 = re.compile(r"^md5:[0-9a-f]{32}$")
_GITBLOB = re.compile(r"^gitblob:[0-9a-f]{40}$")
#: Archive formats :func:`helpers.datasets.download.extract` can unpack.
ARCHIVE_FORMATS = ("zip", "tar", "tar.gz")


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: name in the cache, mirror URLs (tried in order), checksum, size in bytes."""

    name: str
    urls: tuple[str, ...] = ()
    known_hash: str | None = None
    size: int | None = None
    archive: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "\\" in self.name or self.name in {".", ".."}:
            raise ValueError(f"RemoteFile name must be a plain file name, got {self.name!r}.")
        if self.known_hash is not None and not any(p.match(self.known_hash) for p in (_HEX64, _MD5, _GITBLOB)):
            raise ValueError(
                f"{self.name}: known_hash must be 64 lower-case hex digits (SHA-256), 'md5:<32 hex>' or "
                f"'gitblob:<40 hex>', got {self.known_hash!r}."
            )
        if self.archive is not None and self.archive not in ARCHIVE_FORMATS:
            raise ValueError(
                f"{self.name}: archive must be one of {ARCHIVE_FORMATS} or None, got {self.archive!r}."
            )
        if isinstance(self.urls, str):
            raise TypeError(f"{self.name}: urls must be a tuple of strings, not one string.")

    @property
    def sha256(self) -> str | None:
        """The SHA-256 hex digest when the registry has one (``None`` for MD5-only or unverified files)."""
        return self.known_hash if self.known_hash and _HEX64.match(self.known_hash) else None

    @property
    def verified(self) -> bool:
        """True when a download of this file can be checked against a published checksum."""
        return self.known_hash is not None

    def hash_text(self) -> str:
        """The expected checksum in words, for messages (e.g. ``SHA-256 ab12...``)."""
        if self.known_hash is None:
            return "no published checksum (the SHA-256 of your copy is logged when you download it)"
        if self.known_hash.startswith("md5:"):
            return f"MD5 {self.known_hash[4:]} (published by the data provider)"
        if self.known_hash.startswith("gitblob:"):
            return (f"git blob id {self.known_hash[8:]} (as the repository lists it: `git hash-object FILE` "
                    "prints it)")
        return f"SHA-256 {self.known_hash}"


@dataclass(frozen=True)
class DatasetInfo:
    """A real data set: what it is, its files, licence, citation, home page and how to get it by hand."""

    name: str
    title: str
    files: tuple[RemoteFile, ...]
    licence: str
    citation: str
    homepage: str
    requires_login: bool
    manual_steps: str
    layout: str
    loader: str
    notes: str = ""
    extra_citations: tuple[str, ...] = field(default=())
    #: For a set shipped inside the package: its folder under helpers/datasets/bundled/ (nothing to download).
    bundled: str | None = None

    def bundled_files(self) -> dict[str, str]:
        """``{relative path: SHA-256}`` of a bundled set's files ({} for a set that is downloaded)."""
        if self.bundled is None:
            return {}
        from helpers.datasets.bundled import checksums

        return checksums(self.bundled)

    @property
    def downloadable(self) -> bool:
        """True when every file has a direct URL and no login is needed (``fetch`` can do it all)."""
        return not self.requires_login and bool(self.files) and all(f.urls for f in self.files)

    def file(self, name: str) -> RemoteFile:
        """The :class:`RemoteFile` called ``name`` (raises ``KeyError`` naming the choices)."""
        for entry in self.files:
            if entry.name == name:
                return entry
        raise KeyError(f"{self.name} has no file {name!r}; files: {[f.name for f in self.files]}")


# --- Kermany chest X-ray (paediatric pneumonia) ----------------------------------------------------

KERMANY = DatasetInfo(
    name="kermany",
    title="Chest X-Ray Images (Pneumonia): paediatric chest X-rays, normal vs bacterial / viral pneumonia",
    files=(
        RemoteFile(
            name="ChestXRay2017.zip",
            urls=(
                "https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
                "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded",
            ),
            # Mendeley Data publishes no checksum for this file that could be confirmed: None.
            known_hash=None,
            size=None,
            archive="zip",
            note="About 1.2 GB; unpacks to chest_xray/{train,test,val}/{NORMAL,PNEUMONIA}/*.jpeg.",
        ),
    ),
    licence="CC BY 4.0",
    citation=(
        "Kermany D, Zhang K, Goldbaum M (2018). Labeled Optical Coherence Tomography (OCT) and Chest X-Ray "
        "Images for Classification. Mendeley Data, V2. doi:10.17632/rscbjbr9sj.2"
    ),
    extra_citations=(
        "Kermany DS, Goldbaum M, Cai W, et al. Identifying Medical Diagnoses and Treatable Diseases by "
        "Image-Based Deep Learning. Cell 2018;172(5):1122-1131. doi:10.1016/j.cell.2018.02.010",
    ),
    homepage="https://data.mendeley.com/datasets/rscbjbr9sj/2",
    requires_login=False,
    manual_steps=(
        "Open https://data.mendeley.com/datasets/rscbjbr9sj/2, download ChestXRay2017.zip (no login) and "
        "unzip it; pass the folder that holds chest_xray/ (or the NORMAL and PNEUMONIA folders) as "
        "local_dir / root."
    ),
    layout="{train,test,val}/{NORMAL,PNEUMONIA}/*.jpeg (or just {NORMAL,PNEUMONIA}/*.jpeg)",
    loader="load_kermany",
    notes=(
        "File names carry the patient: personNNN_bacteria_MMM.jpeg / personNNN_virus_MMM.jpeg; normals "
        "IM-NNNN-MMMM.jpeg and NORMAL2-IM-NNNN-MMMM.jpeg, whose IM numbers restart (different children)."
    ),
)


# --- NIH ChestX-ray14 ----------------------------------------------------------------------------

_NIH_BOX = "https://nihcc.box.com/shared/static/"
# MD5s published by NIH in FAQ_CHESTXRAY.pdf (Q07, "Do you have MD5s for the compressed files?") in the
# data set's Box folder; NIH publishes no SHA-256, so the MD5 is what can be verified.
_NIH_ARCHIVES = (
    ("vfk49d74nhbxq3nqjg0900w5nvkorp5c", "fe8ed0a6961412fddcbb3603c11b3698"),
    ("i28rlmbvmfjbl8p2n3ril0pptcmcu9d1", "ab07a2d7cbe6f65ddd97b4ed7bde10bf"),
    ("f1t00wrtdk94satdfb9olcolqx20z2jp", "2301d03bde4c246388bad3876965d574"),
    ("0aowwzs5lhjrceb3qp67ahp0rd1l1etg", "9f1b7f5aae01b13f4bc8e2c44a4b8ef6"),
    ("v5e3goj22zr6h8tzualxfsqlqaygfbsn", "1861f3cd0ef7734df8104f2b0309023b"),
    ("asi7ikud9jwnkrnkj99jnpfkjdes7l6l", "456b53a8b351afd92a35bc41444c58c8"),
    ("jn1b4mw4n6lnh74ovmcjb8y48h8xj07n", "1075121ea20a137b87f290d6a4a5965e"),
    ("tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j", "b61f34cec3aa69f295fbb593cbd9d443"),
    ("upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj", "442a3caa61ae9b64e61c561294d1e183"),
    ("l6nilvfa9cg3s28tqv1qc1olm3gnz54p", "09ec81c4c31e32858ad8cf965c494b74"),
    ("hhq8fkdgvcari67vfhs7ppg2w6ni4jze", "499aefc67207a5a97692424cf5dbeed5"),
    ("ioqwiy20ihqwyr8pf4c24eazhh281pbu", "dc9fda1757c2de0032b63347a7d2895c"),
)

NIH_CHESTXRAY14 = DatasetInfo(
    name="nih_chestxray14",
    title="NIH ChestX-ray14: 112,120 frontal chest X-rays of 30,805 patients, 14 text-mined findings",
    files=tuple(
        RemoteFile(
            name=f"images_{i:03d}.tar.gz",
            urls=(f"{_NIH_BOX}{key}.gz",),
            known_hash=f"md5:{md5}",
            archive="tar.gz",
            note="Unpacks to images/*.png.",
        )
        for i, (key, md5) in enumerate(_NIH_ARCHIVES, start=1)
    )
    + (
        # The label and split files sit in the Box folder without a stable direct link: manual only.
        RemoteFile(name="Data_Entry_2017_v2020.csv", note="Labels; download from the Box folder."),
        RemoteFile(name="train_val_list.txt", note="Official patient-level train/val list."),
        RemoteFile(name="test_list.txt", note="Official patient-level test list."),
    ),
    licence=(
        "No restriction on use (NIH FAQ Q04); link to the NIH download site, acknowledge the NIH Clinical "
        "Center and cite the CVPR 2017 paper"
    ),
    citation=(
        "Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM. ChestX-ray8: Hospital-scale Chest X-ray Database "
        "and Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax Diseases. "
        "IEEE CVPR 2017, pp. 3462-3471."
    ),
    homepage="https://nihcc.app.box.com/v/ChestXray-NIHCC",
    requires_login=False,
    manual_steps=(
        "Open https://nihcc.app.box.com/v/ChestXray-NIHCC (no login) and download images_001.tar.gz ... "
        "images_012.tar.gz (about 42 GB in all) together with Data_Entry_2017_v2020.csv, train_val_list.txt "
        "and test_list.txt; unpack the archives into one folder so it holds images/*.png beside the CSV."
    ),
    layout="Data_Entry_2017_v2020.csv + images/*.png (+ train_val_list.txt, test_list.txt)",
    loader="load_nih14",
    notes=(
        "The development subset in ../shared/data is laid out differently: "
        "{train,valid}/{0_normal,1_abnormal}/*.png + labels.csv (read it with load_nih_subset)."
    ),
)


# --- PneumoniaMNIST (MedMNIST v2) -----------------------------------------------------------------

PNEUMONIAMNIST = DatasetInfo(
    name="pneumoniamnist",
    title="PneumoniaMNIST (MedMNIST v2): the Kermany chest X-rays centre-cropped to 28x28",
    files=(
        RemoteFile(
            name="pneumoniamnist.npz",
            urls=(
                "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
                "https://zenodo.org/record/6496656/files/pneumoniamnist.npz?download=1",
            ),
            # MD5 published by MedMNIST (medmnist/info.py INFO["pneumoniamnist"]["MD5"], identical in
            # medmnist 2.1.0 for Zenodo record 6496656 and 3.0.2 for record 10519652; Zenodo lists the
            # same md5 per file). No SHA-256 is published.
            known_hash="md5:28209eda62fecd6e6a2d98b1501bb15f",
            size=None,
            archive=None,
            note="npz with train/val/test _images (N, 28, 28) uint8 and _labels (N, 1); 4708/524/624.",
        ),
    ),
    licence="CC BY 4.0",
    citation=(
        "Yang J, Shi R, Wei D, Liu Z, Zhao L, Ke B, Pfister H, Ni B. MedMNIST v2 - A large-scale lightweight "
        "benchmark for 2D and 3D biomedical image classification. Scientific Data 2023;10:41. "
        "doi:10.1038/s41597-022-01721-8"
    ),
    extra_citations=(KERMANY.extra_citations[0],),
    homepage="https://medmnist.com/",
    requires_login=False,
    manual_steps=(
        "Download pneumoniamnist.npz from https://zenodo.org/records/10519652 (no login) and pass its path "
        "(or its folder) as local_dir / path."
    ),
    layout=(
        "pneumoniamnist.npz (keys train_images, train_labels, val_images, val_labels, test_images, "
        "test_labels)"
    ),
    loader="load_pneumoniamnist",
)


# --- Sunnybrook Cardiac Data ------------------------------------------------------------------------

SUNNYBROOK = DatasetInfo(
    name="sunnybrook",
    title="Sunnybrook Cardiac Data: 45 cine short-axis MR studies with expert LV endo- and epicardial contours",
    # No stable direct download link could be confirmed (the data are offered through the Cardiac Atlas
    # Project's web pages), so there is nothing for fetch() to download: use a local folder.
    files=(),
    licence="CC0 1.0 (public domain)",
    citation=(
        "Radau P, Lu Y, Connelly K, Paul G, Dick AJ, Wright GA. Evaluation Framework for Algorithms "
        "Segmenting Short Axis Cardiac MRI. The MIDAS Journal - Cardiac MR Left Ventricle Segmentation "
        "Challenge, 2009. http://hdl.handle.net/10380/3070"
    ),
    homepage="https://www.cardiacatlas.org/sunnybrook-cardiac-data/",
    requires_login=False,
    manual_steps=(
        "Open https://www.cardiacatlas.org/sunnybrook-cardiac-data/ (CC0; the site may ask you to register), "
        "download the de-identified images and the manual contours, and unpack both into one folder so it "
        "holds SCD_DeidentifiedImages/ and SCD_ManualContours/ (plus scd_patientdata.csv or .xlsx, which maps "
        "SCD0000101 to SC-HF-I-01); pass that folder as local_dir / root."
    ),
    layout=(
        "SCD_DeidentifiedImages/<patient>/**/*.dcm + SCD_ManualContours/SC-HF-I-01/contours-manual/IRCCI-expert/"
        "IM-0001-NNNN-{i,o}contour-manual.txt (+ scd_patientdata.csv), or dicoms/<patient>/*.dcm + "
        "contourfiles/SC-HF-I-1/{i,o}-contours/*.txt + link.csv"
    ),
    loader="load_sunnybrook",
)


# --- RSNA 2021 workshop (brain CT haemorrhage) ---------------------------------------------------------

RSNA_ICH_WORKSHOP = DatasetInfo(
    name="rsna_ich_workshop",
    title=(
        "RSNA 2021 workshop images: brain-windowed head CT, normal vs haemorrhage, with Teachable Machine "
        "projects"
    ),
    files=(),
    licence=(
        "RSNA terms: non-commercial research and education only; do not try to identify anyone; cite "
        '"Brain CT Hemorrhage Dataset, Copyright RSNA, 2019"'
    ),
    citation=(
        "Flanders AE, Prevedello LM, Shih G, et al. Construction of a Machine Learning Dataset through "
        "Collaboration: The RSNA 2019 Brain CT Hemorrhage Challenge. Radiology: Artificial Intelligence "
        "2020;2(3):e190211. doi:10.1148/ryai.2020190211"
    ),
    homepage="https://www.kaggle.com/c/rsna-intracranial-hemorrhage-detection",
    requires_login=True,
    manual_steps=(
        "The workshop's images (30 normal + 30 haemorrhage 224x224 JPEGs, 512x512 PNG test samples and the "
        "Teachable Machine project exp_1.tm) come with the RSNA 2021 workshop materials; ask your instructor. "
        "To rebuild them from the source, sign in to Kaggle, accept the rules of "
        "https://www.kaggle.com/c/rsna-intracranial-hemorrhage-detection and download its data, then window "
        "the DICOMs to the brain window (40, 80) and save them as images in one folder per class. Pass the "
        "folder as local_dir / root."
    ),
    layout="<Class>/*.{jpg,png} folders, or <Class>_<n>.jpg files, or a Teachable Machine .tm project",
    loader="load_image_folder",
)


_TM_RAW = "https://raw.githubusercontent.com/dila-ai/RSNA_2021_Workshop/main/exp/"

RSNA_ICH_WORKSHOP_TM = DatasetInfo(
    name="rsna_ich_workshop_tm",
    title=(
        "The RSNA 2021 workshop's Teachable Machine projects: brain-windowed head CT images (normal, haemorrhage) "
        "with each experiment's training settings"
    ),
    files=(
        RemoteFile(name="exp_1.tm", urls=(_TM_RAW + "exp_1.tm",), size=632_292,
                   known_hash="59409dfc1d0404ef27ee63642b3f5a2ebb766e0b7984d072814c6936e39cc4b1",
                   note="Experiment 1: 30 normal + 30 haemorrhage, 15 epochs, batch 16, learning rate 5e-5."),
        RemoteFile(name="exp_2.tm", urls=(_TM_RAW + "exp_2.tm",),
                   known_hash="gitblob:7a1add1b4f5287374f88ee8a5b54c8343f25de96",
                   note="Experiment 2 (imbalance); only its git blob id is known."),
        RemoteFile(name="exp_3.tm", urls=(_TM_RAW + "exp_3.tm",),
                   known_hash="gitblob:922ab2960ca0ee8705874b29aeb28b7271e2f19d",
                   note="Experiment 3 (balance); experiment 4 is experiment 3 trained longer and has no file."),
        RemoteFile(name="exp_5.tm", urls=(_TM_RAW + "exp_5.tm",), size=1_995_957,
                   known_hash="4f68976ecf8a33b96472b3600fe8d33aa4440b5e0b9ecda760222816c5b1ff48",
                   note="Experiment 5: HU colour coding, 80 epochs."),
    ),
    licence=RSNA_ICH_WORKSHOP.licence,
    citation=RSNA_ICH_WORKSHOP.citation,
    homepage="https://github.com/dila-ai/RSNA_2021_Workshop",
    requires_login=False,
    manual_steps=(
        "Open https://github.com/dila-ai/RSNA_2021_Workshop, folder exp/, download exp_1.tm, exp_2.tm, exp_3.tm "
        "and exp_5.tm (Download raw file) and put them in one folder. The images may not be copied into this "
        "project (non-commercial research and education only): each learner downloads them."
    ),
    layout="exp_<n>.tm: zip files of <Class>-!-<n>.jpg images and manifest.json (read_tm_project reads them)",
    loader="read_tm_project",
    notes="SHA-256 for exp_1 and exp_5 checked against the repository's files; exp_2 and exp_3 by git blob id.",
)


# --- FracAtlas ---------------------------------------------------------------------------------------

FRACATLAS = DatasetInfo(
    name="fracatlas",
    title="FracAtlas: 4,083 musculoskeletal radiographs (717 fractured) with classification labels and masks",
    files=(
        RemoteFile(
            name="FracAtlas.zip",
            # figshare file id as of version 7 of the article; if it moved, the current download_url is
            # listed by https://api.figshare.com/v2/articles/22363012.
            urls=("https://ndownloader.figshare.com/files/65518038",),
            # figshare computes an MD5 per file, but none could be confirmed from a published source: None.
            known_hash=None,
            size=None,
            archive="zip",
            note=(
                "About 320 MB; unpacks to FracAtlas/{images/{Fractured,Non_fractured},Annotations,utilities,"
                "dataset.csv}."
            ),
        ),
    ),
    licence="CC BY 4.0",
    citation=(
        "Abedeen I, Rahman MA, Prottyasha FZ, Ahmed T, Chowdhury TM, Shatabda S. FracAtlas: A Dataset for "
        "Fracture Classification, Localization and Segmentation of Musculoskeletal Radiographs. Scientific "
        "Data 2023;10. doi:10.1038/s41597-023-02432-4"
    ),
    homepage="https://figshare.com/articles/dataset/The_dataset/22363012",
    requires_login=False,
    manual_steps=(
        "Open https://figshare.com/articles/dataset/The_dataset/22363012 (doi:10.6084/m9.figshare.22363012, "
        "no login), download FracAtlas.zip and unzip it; pass the FracAtlas folder as local_dir / root."
    ),
    layout="FracAtlas/images/{Fractured,Non_fractured}/IMG*.jpg + FracAtlas/dataset.csv",
    loader="load_fracatlas",
    notes="FracAtlas gives no patient identifiers: loaders use the image id, so splits are per image.",
)


# --- Real subsets shipped with the package (helpers/datasets/bundled/) --------------------------------------------


def _bundled(name: str, title: str, source: DatasetInfo | None, loader: str, **kw: str) -> DatasetInfo:
    """A registry entry for the bundled set ``name``, with the licence and citation of the set it is a subset of."""
    return DatasetInfo(
        name=name, title=title, files=(), licence=kw.get("licence", source.licence if source else ""),
        citation=kw.get("citation", source.citation if source else ""),
        homepage=kw.get("homepage", source.homepage if source else ""), requires_login=False,
        manual_steps=(f"Nothing to download: shipped with medimg-helpers in helpers/datasets/bundled/{name}/ "
                      f"(helpers.datasets.bundled.bundled_dir({name!r})); its README.md says what was changed."),
        layout=kw.get("layout", source.layout if source else ""), loader=loader, bundled=name,
        extra_citations=source.extra_citations if source else ())


SUNNYBROOK_BUNDLED = _bundled("sunnybrook_lv", "Sunnybrook Cardiac Data, 4 patients' contoured frames (74 MR slices)",
                              SUNNYBROOK, "load_sunnybrook")
KERMANY_BUNDLED = _bundled("kermany_chest_xray", "Kermany chest X-rays, 224 px, 400 + 401 images of 533 whole patients",
                           KERMANY, "load_kermany")
NIH_BUNDLED = _bundled("nih_chestxray14_64", "NIH ChestX-ray14, 800 images at 64 px with their findings",
                       NIH_CHESTXRAY14, "load_nih_subset", layout="{train,valid}/{0_normal,1_abnormal}/*.png + labels.csv")
DICOM_SAMPLES_BUNDLED = _bundled(
    "dicom_samples", "Real DICOM samples: CT, MR, CR (MONOCHROME1, JPEG-LS, JPEG 2000), US, SEG, PHI screen captures",
    None, "helpers.dicom.read_folder", licence="MIT (pydicom-data, pylibjpeg-data, deid-data)",
    citation="pydicom-data and pylibjpeg-data (NEMA WG04 compression test images), deid-data 0.0.20",
    homepage="https://github.com/pydicom/pydicom-data", layout="nema_wg04_and_pydicom/*.dcm, deid_data/*.dcm")


#: Every registered data set by name.
REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (KERMANY, NIH_CHESTXRAY14, PNEUMONIAMNIST, SUNNYBROOK, RSNA_ICH_WORKSHOP, RSNA_ICH_WORKSHOP_TM,
                 FRACATLAS, SUNNYBROOK_BUNDLED, KERMANY_BUNDLED, NIH_BUNDLED, DICOM_SAMPLES_BUNDLED)
}


def list_datasets() -> list[str]:
    """Names of the registered real data sets, sorted."""
    return sorted(REGISTRY)


def get_dataset(name: str | DatasetInfo) -> DatasetInfo:
    """The registry entry called ``name`` (an entry passes through); raises DatasetError naming the choices."""
    if isinstance(name, DatasetInfo):
        return name
    key = str(name).strip().lower().replace("-", "_")
    if key not in REGISTRY:
        raise DatasetError(
            f"No data set called {name!r} in the registry. Known data sets: {', '.join(list_datasets())}."
        )
    return REGISTRY[key]


def how_to_get(name: str | DatasetInfo) -> str:
    """The manual-download steps, licence and citation of a data set as one paragraph of text."""
    info = get_dataset(name)
    lines = [f"{info.title}.", f"How to get it: {info.manual_steps}", f"Expected layout: {info.layout}."]
    for entry in info.files:
        where = ", ".join(entry.urls) if entry.urls else "no direct link (see the steps above)"
        lines.append(f"  {entry.name}: {where}; {entry.hash_text()}.")
    lines.append(f"Licence: {info.licence}. Cite: {info.citation}")
    return "\n".join(lines)
