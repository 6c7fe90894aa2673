"""Checked, cached downloads of the registered data sets (through pooch), and safe archive extraction.

``fetch("pneumoniamnist")`` downloads into ``cache_dir("downloads")/pneumoniamnist/``, verifies the file
against the registry's checksum, and on a second call uses the cached copy without touching the network.
A download is written to a temporary file beside its target and moved into place only once verified, so
a failed or mismatching download never leaves a bad file in the cache and never replaces a good one.
Hosts that cannot be reached, files that moved and data sets that need a login raise
:class:`~helpers.errors.DownloadUnavailable` with the steps to get the file by hand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import uuid
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from helpers.config import cache_dir
from helpers.datasets.registry import DatasetInfo, RemoteFile, get_dataset, how_to_get
from helpers.errors import ChecksumMismatch, DatasetError, DownloadUnavailable, EmptyFolderError

logger = logging.getLogger(__name__)

#: Seconds to wait for the host to connect and for each read before giving up.
DEFAULT_TIMEOUT = 30.0
#: Bytes read at a time while downloading and hashing.
CHUNK_SIZE = 1 << 20


def default_cache() -> Path:
    """Where downloads are kept: ``helpers.config.cache_dir("downloads")``."""
    return cache_dir("downloads")


def file_hashes(path: str | Path) -> dict[str, str]:
    """SHA-256, MD5 and git blob id (SHA-1 of ``blob <size>\\0`` + content) of a file, read once in 1 MiB chunks:
    ``{"sha256": ..., "md5": ..., "gitblob": ...}``."""
    sha, md5, blob = hashlib.sha256(), hashlib.md5(), hashlib.sha1()
    blob.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
            sha.update(chunk)
            md5.update(chunk)
            blob.update(chunk)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest(), "gitblob": blob.hexdigest()}


def _matches(entry: RemoteFile, digests: dict[str, str]) -> bool:
    """True when ``digests`` agree with the entry's published checksum (SHA-256, the publisher's MD5, or the git
    blob id the repository lists)."""
    if entry.known_hash is None:
        return False
    if entry.known_hash.startswith("md5:"):
        return digests["md5"] == entry.known_hash[4:]
    if entry.known_hash.startswith("gitblob:"):
        return digests["gitblob"] == entry.known_hash[8:]
    return digests["sha256"] == entry.known_hash


def _manual_steps(entry: RemoteFile, target: Path, info: DatasetInfo | None) -> str:
    """Numbered steps to get one file by hand: where from, where to put it, which checksum to expect."""
    source = ", ".join(entry.urls) if entry.urls else (info.homepage if info else "the data provider")
    steps = [
        f"  1. Download {entry.name} from {source}" + (f" ({info.manual_steps})" if info else "") + ".",
        f"  2. Put it at {target}",
        f"  3. Expected checksum: {entry.hash_text()}.",
        "  Then call fetch() again: the file is verified and used without downloading. Or unpack it "
        "yourself and pass the folder as local_dir=... .",
    ]
    return "\n".join(steps)


def _download(url: str, output: Path, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``output`` with pooch's HTTP downloader (tqdm progress bar when asked)."""
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=progress, chunk_size=CHUNK_SIZE, timeout=timeout)
    downloader(url, str(output), None)


def _describe_request_error(exc: Exception, timeout: float) -> str:
    """A short, human reason for a failed HTTP request (status code, timeout, refused connection)."""
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        status, reason = exc.response.status_code, exc.response.reason
        if status == 404:
            return f"HTTP 404 {reason}: the file is not at this address (it may have moved)"
        if status in (401, 403):
            return f"HTTP {status} {reason}: the host refused the download (a login or permission is needed)"
        return f"HTTP {status} {reason}"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {timeout:g} s (timed out)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "could not connect (no network, the name did not resolve, or the connection was refused)"
    return f"{type(exc).__name__}: {exc}"


def fetch_file(
    entry: RemoteFile,
    folder: str | Path | None = None,
    progress: bool = True,
    *,
    allow_unverified: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    info: DatasetInfo | None = None,
) -> Path:
    """Download one registry file into ``folder`` (default: the downloads cache), verified; return its path.

    A verified copy already in ``folder`` is used without any network access (a file without a
    published checksum that is already there, e.g. put there by hand, is used with its SHA-256 logged).
    Mirrors are tried in order. Raises ChecksumMismatch (nothing bad is kept), DownloadUnavailable (with
    manual steps) or, when a file without a published checksum would have to be downloaded and
    ``allow_unverified=False``, DatasetError.
    """
    import requests

    folder = Path(folder) if folder is not None else default_cache()
    target = folder / entry.name
    label = f"{entry.name}" + (f" ({info.name})" if info else "")

    if target.is_file():
        if entry.known_hash is None:
            logger.warning("%s: using the unverified cached copy %s (SHA-256 %s).", label, target,
                           file_hashes(target)["sha256"])
            return target
        digests = file_hashes(target)
        if _matches(entry, digests):
            return target
        if not entry.urls:
            raise ChecksumMismatch(
                f"{target} does not match the registry: expected {entry.hash_text()}, got SHA-256 "
                f"{digests['sha256']} (MD5 {digests['md5']}). It is probably incomplete or another "
                f"version; replace it.\n{_manual_steps(entry, target, info)}"
            )
        logger.warning("%s: cached copy does not match the registry; downloading it again.", label)

    if not entry.urls:
        raise DownloadUnavailable(
            f"{label} has no direct download link.\n{_manual_steps(entry, target, info)}"
        )
    if entry.known_hash is None and not allow_unverified:
        raise DatasetError(
            f"{label} has no published checksum in the registry, so a download could not be verified. "
            "If you trust the source, call again with allow_unverified=True: the SHA-256 of what you get is "
            "logged so it can be added to helpers/datasets/registry.py."
        )

    folder.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    mismatches: list[str] = []
    for url in entry.urls:
        partial = folder / f".{entry.name}.{uuid.uuid4().hex}.part"
        try:
            _download(url, partial, progress, timeout)
            digests = file_hashes(partial)
            if entry.known_hash is None:
                logger.warning(
                    "%s: downloaded WITHOUT verification (no published checksum); SHA-256 %s. Add "
                    "known_hash=%r to its RemoteFile in helpers/datasets/registry.py once you trust it.",
                    label, digests["sha256"], digests["sha256"],
                )
                os.replace(partial, target)
                return target
            if _matches(entry, digests):
                os.replace(partial, target)
                return target
            mismatches.append(
                f"  {url}: got SHA-256 {digests['sha256']} (MD5 {digests['md5']})"
            )
        except requests.exceptions.RequestException as exc:
            failures.append(f"  {url}: {_describe_request_error(exc, timeout)}")
        finally:
            partial.unlink(missing_ok=True)

    if mismatches:
        raise ChecksumMismatch(
            f"{label}: the download does not match the registry (expected {entry.hash_text()}):\n"
            + "\n".join(mismatches + failures)
            + "\nThe downloaded file was deleted and any earlier cached copy left untouched. The host may "
            "serve a newer version or a broken file; check the data set's page before trusting it.\n"
            + _manual_steps(entry, target, info)
        )
    raise DownloadUnavailable(
        f"Could not download {label}:\n" + "\n".join(failures) + "\nDownload it by hand:\n"
        + _manual_steps(entry, target, info)
    )


def fetch(
    source: str | DatasetInfo | RemoteFile,
    cache: str | Path | None = None,
    progress: bool = True,
    *,
    allow_unverified: bool = False,
    local_dir: str | Path | None = None,
    unpack: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Get a registered data set (by name) or one file, verified and cached; return where it is.

    Returns the file for a single file (or a one-file data set), else the data set's folder
    ``<cache>/<name>/``; with ``unpack=True`` archives are unpacked into that folder, which is
    returned. ``local_dir`` uses an existing folder instead (checked, never downloaded into); a set shipped with
    the package (``registry`` entries with ``bundled``) returns its folder after checking every file's SHA-256.
    ``cache`` defaults to ``helpers.config.cache_dir("downloads")``; ``timeout`` is in seconds.
    """
    base = Path(cache) if cache is not None else default_cache()
    if isinstance(source, RemoteFile):
        path = fetch_file(source, base, progress, allow_unverified=allow_unverified, timeout=timeout)
        return extract(path) if unpack and source.archive else path

    info = get_dataset(source)
    if local_dir is not None:
        return _check_local_dir(info, Path(local_dir).expanduser())
    if info.bundled is not None:  # shipped with the package: checked, never downloaded
        from helpers.datasets.bundled import bundled_dir

        return bundled_dir(info.bundled, verify_files=True)
    if info.requires_login:
        raise DownloadUnavailable(
            f"{info.name} cannot be downloaded automatically: it needs a login or accepting terms.\n"
            f"{how_to_get(info)}\nThen pass the folder: fetch({info.name!r}, local_dir=...)."
        )
    if not info.files:
        raise DownloadUnavailable(
            f"{info.name} has no direct download link in the registry.\n{how_to_get(info)}\n"
            f"Then pass the folder: fetch({info.name!r}, local_dir=...)."
        )

    folder = base / info.name
    # Files without a link must already be in place: say so before spending hours on the others.
    manual_missing = [f for f in info.files if not f.urls and not (folder / f.name).is_file()]
    if manual_missing:
        steps = "\n".join(_manual_steps(f, folder / f.name, info) for f in manual_missing)
        raise DownloadUnavailable(
            f"{info.name}: {len(manual_missing)} file(s) have no direct download link and are not in "
            f"{folder} yet: {', '.join(f.name for f in manual_missing)}.\n{steps}"
        )
    paths = [
        fetch_file(entry, folder, progress, allow_unverified=allow_unverified, timeout=timeout, info=info)
        for entry in info.files
    ]
    if unpack:
        for entry, path in zip(info.files, paths):
            if entry.archive:
                extract(path, folder)
        return folder
    return paths[0] if len(paths) == 1 else folder


def _check_local_dir(info: DatasetInfo, path: Path) -> Path:
    """Return ``path`` if it exists and holds something; else raise with the data set's manual steps."""
    if not path.exists():
        raise DatasetError(f"{path} does not exist: expected a copy of {info.name} there.\n{how_to_get(info)}")
    if path.is_dir() and not any(p for p in path.iterdir() if not p.name.startswith(".")):
        raise EmptyFolderError(f"{path} is empty: expected a copy of {info.name} there.\n{how_to_get(info)}")
    return path


# --- Archives ------------------------------------------------------------------------------------


def archive_format(path: str | Path) -> str:
    """``"zip"``, ``"tar.gz"`` or ``"tar"`` from the file name, else from its first bytes."""
    name = Path(path).name.lower()
    if name.endswith(".zip") or name.endswith(".tm"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if name.endswith(".tar"):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar.gz" if Path(path).read_bytes()[:2] == b"\x1f\x8b" else "tar"
    raise DatasetError(f"{Path(path).name} is not a zip or tar archive (or is incomplete); download it again.")


def _skip_member(name: str) -> bool:
    """True for macOS resource-fork clutter (``__MACOSX/``, ``._*``) that zips made on a Mac carry."""
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] == ".DS_Store")


def _safe_target(dest: Path, name: str, archive: Path) -> Path:
    """Where member ``name`` would land under ``dest``; raise DatasetError if that is outside ``dest``."""
    posix = name.replace("\\", "/")
    bad = (
        posix.startswith("/")
        or PureWindowsPath(name).drive
        or ".." in PurePosixPath(posix).parts
    )
    target = (dest / posix).resolve()
    root = dest.resolve()
    if bad or (target != root and root not in target.parents):
        raise DatasetError(
            f"{archive.name}: member {name!r} would be written outside {dest} (path traversal). "
            "The archive is unsafe and nothing was extracted; download it again from the official source."
        )
    return target


def extract(archive: str | Path, dest: str | Path | None = None) -> Path:
    """Unpack a zip / tar / tar.gz archive into ``dest`` (default: beside it) safely; return ``dest``.

    Every member is checked before anything is written: absolute paths, ``..`` and links are refused
    (DatasetError). A marker file remembers a finished extraction, so a second call does nothing.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DatasetError(f"{archive} does not exist: download it first (see fetch()).")
    fmt = archive_format(archive)
    if dest is None:
        stem = archive.name
        for suffix in (".tar.gz", ".tgz", ".tar", ".zip", ".tm"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        dest = archive.parent / stem
    dest = Path(dest)
    stat = archive.stat()
    marker = dest / f".extracted-{archive.name}"
    stamp = f"{stat.st_size} {stat.st_mtime_ns}\n"
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    dest.mkdir(parents=True, exist_ok=True)

    if fmt == "zip":
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not _skip_member(m.filename)]
            for member in members:
                _safe_target(dest, member.filename, archive)
                mode = (member.external_attr >> 16) & 0o170000
                if mode == 0o120000:  # a symbolic link stored in the zip
                    raise DatasetError(f"{archive.name}: member {member.filename!r} is a link; refused.")
            for member in members:
                zf.extract(member, dest)
    else:
        with tarfile.open(archive, "r:gz" if fmt == "tar.gz" else "r:") as tf:
            members = [m for m in tf.getmembers() if not _skip_member(m.name)]
            for member in members:
                _safe_target(dest, member.name, archive)
                if not (member.isfile() or member.isdir()):
                    raise DatasetError(
                        f"{archive.name}: member {member.name!r} is a link or device, not a plain file; refused."
                    )
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tf.extractall(dest, members=members)
    marker.write_text(stamp)
    return dest
