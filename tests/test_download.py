"""Downloads against a loopback HTTP server (127.0.0.1 only, started here, stops by itself): checksums,
the cache, unreachable hosts, 404s, login-only sets, local folders and safe archive extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import logging
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from helpers.datasets import download, real, registry
from helpers.datasets.download import extract, fetch, file_hashes
from helpers.datasets.registry import REGISTRY, DatasetInfo, RemoteFile, get_dataset, how_to_get
from helpers.errors import ChecksumMismatch, DatasetError, DownloadUnavailable, EmptyFolderError

PAYLOAD = b"medimg test payload\n" * 500


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the server's folder and counts GET requests per path."""

    def do_GET(self):  # noqa: N802 (http.server naming)
        with self.server.lock:
            self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        super().do_GET()

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A loopback HTTP server serving tmp_path/'www'; yields (base_url, folder, hits); shuts down after."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()

    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(www), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.hits, httpd.lock = {}, threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60.0, httpd.shutdown)  # bounded: stops by itself if a test hangs
    watchdog.daemon = True
    watchdog.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, httpd.hits
    finally:
        watchdog.cancel()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- fetch: verification and cache ------------------------------------------------------------------


def test_good_file_downloads_verifies_and_second_call_uses_cache(server, tmp_path):
    base, www, hits = server
    (www / "data.bin").write_bytes(PAYLOAD)
    entry = RemoteFile("data.bin", urls=(f"{base}/data.bin",), known_hash=_sha(PAYLOAD))
    cache = tmp_path / "cache"

    path = fetch(entry, cache=cache, progress=False)
    assert path == cache / "data.bin"
    assert path.read_bytes() == PAYLOAD
    assert hits == {"/data.bin": 1}
    assert _leftovers(cache) == ["data.bin"]  # no partial files left

    again = fetch(entry, cache=cache, progress=False)
    assert again == path
    assert hits == {"/data.bin": 1}  # served from the cache: the server was not asked again


def test_progress_bar_goes_to_stderr(server, tmp_path, capsys):
    base, www, _ = server
    (www / "data.bin").write_bytes(PAYLOAD)
    entry = RemoteFile("data.bin", urls=(f"{base}/data.bin",), known_hash=_sha(PAYLOAD))
    assert fetch(entry, cache=tmp_path / "c", progress=True).read_bytes() == PAYLOAD
    captured = capsys.readouterr()
    assert captured.out == "" and "100%" in captured.err  # tqdm's bar; nothing printed to stdout


def test_publisher_md5_is_accepted_in_pooch_notation(server, tmp_path):
    base, www, hits = server
    (www / "m.npz").write_bytes(PAYLOAD)
    entry = RemoteFile("m.npz", urls=(f"{base}/m.npz",), known_hash="md5:" + hashlib.md5(PAYLOAD).hexdigest())
    path = fetch(entry, cache=tmp_path / "c", progress=False)
    digests = file_hashes(path)
    assert (digests["sha256"], digests["md5"]) == (_sha(PAYLOAD), hashlib.md5(PAYLOAD).hexdigest())


def test_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path):
    base, www, _ = server
    (www / "data.bin").write_bytes(PAYLOAD)
    wrong = _sha(b"something else")
    entry = RemoteFile("data.bin", urls=(f"{base}/data.bin",), known_hash=wrong)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatch) as info:
        fetch(entry, cache=cache, progress=False)
    message = str(info.value)
    assert wrong in message and _sha(PAYLOAD) in message  # expected and actual both named
    assert _leftovers(cache) == []  # neither the file nor a partial download stays


def test_mismatch_does_not_destroy_an_earlier_good_cached_file(server, tmp_path):
    base, www, hits = server
    old = b"the copy we verified last year\n"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "data.bin").write_bytes(old)
    (www / "data.bin").write_bytes(PAYLOAD)
    # The registry now expects a third version: the cached copy is stale, the server's is wrong too.
    entry = RemoteFile("data.bin", urls=(f"{base}/data.bin",), known_hash=_sha(b"version 3"))
    with pytest.raises(ChecksumMismatch):
        fetch(entry, cache=cache, progress=False)
    assert hits == {"/data.bin": 1}
    assert (cache / "data.bin").read_bytes() == old
    assert _leftovers(cache) == ["data.bin"]


def test_stale_cached_file_is_replaced_by_a_verified_download(server, tmp_path):
    base, www, hits = server
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "data.bin").write_bytes(b"truncated")
    (www / "data.bin").write_bytes(PAYLOAD)
    entry = RemoteFile("data.bin", urls=(f"{base}/data.bin",), known_hash=_sha(PAYLOAD))
    assert fetch(entry, cache=cache, progress=False).read_bytes() == PAYLOAD
    assert hits == {"/data.bin": 1}


def test_second_mirror_is_used_when_the_first_is_missing(server, tmp_path):
    base, www, hits = server
    (www / "mirror.bin").write_bytes(PAYLOAD)
    entry = RemoteFile("data.bin", urls=(f"{base}/gone.bin", f"{base}/mirror.bin"), known_hash=_sha(PAYLOAD))
    assert fetch(entry, cache=tmp_path / "c", progress=False).read_bytes() == PAYLOAD
    assert hits == {"/gone.bin": 1, "/mirror.bin": 1}


# --- fetch: failures with manual steps ----------------------------------------------------------------


def test_closed_port_gives_download_unavailable_with_manual_steps(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/data.bin"
    entry = RemoteFile("data.bin", urls=(url,), known_hash=_sha(PAYLOAD))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadUnavailable) as info:
        fetch(entry, cache=cache, progress=False, timeout=5)
    message = str(info.value)
    assert url in message  # where to get it
    assert str(cache / "data.bin") in message  # where to put it
    assert _sha(PAYLOAD) in message  # what to expect
    assert "could not connect" in message
    assert isinstance(info.value, ConnectionError)  # generic handlers still work
    assert _leftovers(cache) == []


def test_silent_host_times_out_as_download_unavailable(tmp_path):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.bin"
        entry = RemoteFile("slow.bin", urls=(url,), known_hash=_sha(PAYLOAD))
        with pytest.raises(DownloadUnavailable, match="timed out"):
            fetch(entry, cache=tmp_path / "c", progress=False, timeout=0.5)


def test_404_gives_a_clear_error(server, tmp_path):
    base, _, _ = server
    entry = RemoteFile("data.bin", urls=(f"{base}/missing.bin",), known_hash=_sha(PAYLOAD))
    with pytest.raises(DownloadUnavailable) as info:
        fetch(entry, cache=tmp_path / "c", progress=False)
    assert "HTTP 404" in str(info.value) and "may have moved" in str(info.value)
    assert f"{base}/missing.bin" in str(info.value)


def test_unverified_file_is_refused_unless_allowed_then_its_sha256_is_logged(server, tmp_path, caplog):
    base, www, hits = server
    (www / "new.zip").write_bytes(PAYLOAD)
    entry = RemoteFile("new.zip", urls=(f"{base}/new.zip",), known_hash=None)
    with pytest.raises(DatasetError, match="allow_unverified=True"):
        fetch(entry, cache=tmp_path / "c", progress=False)
    assert hits == {}  # refused before any network access
    with caplog.at_level(logging.WARNING, logger=download.__name__):
        path = fetch(entry, cache=tmp_path / "c", progress=False, allow_unverified=True)
    assert path.read_bytes() == PAYLOAD
    assert _sha(PAYLOAD) in caplog.text


def test_login_only_data_set_raises_up_front_with_the_steps(tmp_path):
    with pytest.raises(DownloadUnavailable) as info:
        fetch("rsna_ich_workshop", cache=tmp_path / "c", progress=False)
    message = str(info.value)
    assert "login" in message
    assert "https://www.kaggle.com/c/rsna-intracranial-hemorrhage-detection" in message
    assert "local_dir" in message
    assert not (tmp_path / "c").exists()


def test_data_set_without_direct_link_points_to_the_manual_steps(tmp_path):
    with pytest.raises(DownloadUnavailable, match="cardiacatlas.org"):
        fetch("sunnybrook", cache=tmp_path / "c", progress=False)


def _info(files: tuple[RemoteFile, ...], **kw) -> DatasetInfo:
    fields = dict(
        name="toyset", title="A toy data set", files=files, licence="CC0", citation="Nobody (2024).",
        homepage="http://127.0.0.1/", requires_login=False, manual_steps="Ask the instructor.",
        layout="a/*.txt", loader="load_image_folder",
    )
    fields.update(kw)
    return DatasetInfo(**fields)


def test_missing_manual_file_is_reported_before_any_download(server, tmp_path):
    base, www, hits = server
    (www / "big.bin").write_bytes(PAYLOAD)
    info = _info((RemoteFile("big.bin", urls=(f"{base}/big.bin",), known_hash=_sha(PAYLOAD)),
                  RemoteFile("labels.csv", known_hash=_sha(b"x"))))
    cache = tmp_path / "c"
    with pytest.raises(DownloadUnavailable) as err:
        fetch(info, cache=cache, progress=False)
    assert "labels.csv" in str(err.value) and str(cache / "toyset" / "labels.csv") in str(err.value)
    assert hits == {}
    # Once the file is put where the message says, fetch verifies it and downloads the rest.
    (cache / "toyset").mkdir(parents=True)
    (cache / "toyset" / "labels.csv").write_bytes(b"x")
    assert fetch(info, cache=cache, progress=False) == cache / "toyset"
    assert (cache / "toyset" / "big.bin").read_bytes() == PAYLOAD


def test_hand_placed_file_without_published_checksum_is_used_and_logged(tmp_path, caplog):
    info = _info((RemoteFile("Data_Entry.csv", known_hash=None),))
    cache = tmp_path / "c"
    (cache / "toyset").mkdir(parents=True)
    (cache / "toyset" / "Data_Entry.csv").write_bytes(b"a,b\n")
    with caplog.at_level(logging.WARNING, logger=download.__name__):
        assert fetch(info, cache=cache, progress=False) == cache / "toyset" / "Data_Entry.csv"
    assert _sha(b"a,b\n") in caplog.text


def test_fetch_data_set_returns_file_or_unpacked_folder(server, tmp_path):
    base, www, _ = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("toy/a/one.txt", "1")
        zf.writestr("__MACOSX/toy/._one.txt", "junk")
    (www / "toy.zip").write_bytes(buffer.getvalue())
    info = _info((RemoteFile("toy.zip", urls=(f"{base}/toy.zip",), known_hash=_sha(buffer.getvalue()),
                             archive="zip"),))
    cache = tmp_path / "c"
    assert fetch(info, cache=cache, progress=False) == cache / "toyset" / "toy.zip"
    folder = fetch(info, cache=cache, progress=False, unpack=True)
    assert folder == cache / "toyset"
    assert (folder / "toy" / "a" / "one.txt").read_text() == "1"
    assert not (folder / "__MACOSX").exists()


def test_local_dir_is_used_instead_of_downloading(tmp_path):
    here = tmp_path / "my_copy"
    here.mkdir()
    (here / "NORMAL").mkdir()
    assert fetch("kermany", local_dir=here) == here
    with pytest.raises(DatasetError, match="data.mendeley.com"):
        fetch("kermany", local_dir=tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptyFolderError):
        fetch("kermany", local_dir=empty)


def test_default_cache_lives_under_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    assert download.default_cache() == tmp_path / "data" / "downloads"


# --- extract ----------------------------------------------------------------------------------------


def _zip_with(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr(name, "gotcha")
    return path


@pytest.mark.parametrize("member", ["../escaped.txt", "a/../../escaped.txt", "/tmp/escaped_abs.txt"])
def test_zip_member_outside_the_folder_is_refused(tmp_path, member):
    archive = _zip_with(tmp_path, member)
    dest = tmp_path / "out" / "inner"
    with pytest.raises(DatasetError, match="outside"):
        extract(archive, dest)
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert not (dest / "fine.txt").exists()  # checked before anything is written


def _tar_with(tmp_path: Path, members: list[tarfile.TarInfo]) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            data = b"gotcha" if info.isfile() else None
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_tar_traversal_and_links_are_refused(tmp_path):
    archive = _tar_with(tmp_path, [tarfile.TarInfo("../escaped.txt")])
    with pytest.raises(DatasetError, match="outside"):
        extract(archive, tmp_path / "out")
    link = tarfile.TarInfo("images/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = _tar_with(tmp_path, [link])
    with pytest.raises(DatasetError, match="link"):
        extract(archive, tmp_path / "out2")
    assert not (tmp_path / "escaped.txt").exists()


def test_extract_tar_gz_and_skip_when_already_done(tmp_path):
    archive = tmp_path / "images_001.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name in ("images/00000001_000.png", "images/00000002_000.png"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"png"))
    dest = extract(archive)
    assert dest == tmp_path / "images_001"
    assert sorted(p.name for p in (dest / "images").iterdir()) == ["00000001_000.png", "00000002_000.png"]
    (dest / "images" / "00000001_000.png").write_bytes(b"edited")
    assert extract(archive) == dest  # the marker says it is done: nothing is overwritten
    assert (dest / "images" / "00000001_000.png").read_bytes() == b"edited"


def test_not_an_archive_is_reported(tmp_path):
    junk = tmp_path / "download.bin"
    junk.write_bytes(b"<html>error page</html>")
    with pytest.raises(DatasetError, match="not a zip or tar"):
        extract(junk)


# --- registry ------------------------------------------------------------------------------------


def test_registry_entries_are_complete_and_honest():
    assert set(REGISTRY) == {"kermany", "nih_chestxray14", "pneumoniamnist", "sunnybrook",
                             "rsna_ich_workshop", "rsna_ich_workshop_tm", "fracatlas", "sunnybrook_lv",
                             "kermany_chest_xray", "nih_chestxray14_64", "dicom_samples"}
    import importlib

    for info in REGISTRY.values():
        assert info.title and info.licence and info.citation and info.manual_steps and info.layout
        module, _, name = info.loader.rpartition(".")
        assert callable(getattr(importlib.import_module(module) if module else real, name)), info.loader
        assert info.homepage.startswith(("https://", "http://"))
        for entry in info.files:
            assert all(url.startswith("https://") for url in entry.urls), entry
        text = how_to_get(info)
        assert info.citation in text and info.licence in text
    # Verified from published sources: NIH's MD5s (FAQ Q07) and MedMNIST's MD5; the rest are None.
    nih = get_dataset("nih_chestxray14")
    archives = [f for f in nih.files if f.archive]
    assert len(archives) == 12 and all(f.known_hash.startswith("md5:") for f in archives)
    assert nih.file("images_001.tar.gz").known_hash == "md5:fe8ed0a6961412fddcbb3603c11b3698"
    assert get_dataset("pneumoniamnist").files[0].known_hash == "md5:28209eda62fecd6e6a2d98b1501bb15f"
    assert get_dataset("kermany").files[0].known_hash is None
    assert get_dataset("fracatlas").files[0].known_hash is None
    assert get_dataset("rsna_ich_workshop").requires_login
    tm = get_dataset("rsna_ich_workshop_tm")
    assert [f.name for f in tm.files] == ["exp_1.tm", "exp_2.tm", "exp_3.tm", "exp_5.tm"] and tm.downloadable
    assert tm.file("exp_1.tm").sha256 == "59409dfc1d0404ef27ee63642b3f5a2ebb766e0b7984d072814c6936e39cc4b1"
    assert tm.file("exp_5.tm").sha256 == "4f68976ecf8a33b96472b3600fe8d33aa4440b5e0b9ecda760222816c5b1ff48"
    assert tm.file("exp_2.tm").known_hash == "gitblob:7a1add1b4f5287374f88ee8a5b54c8343f25de96"
    assert tm.file("exp_3.tm").known_hash == "gitblob:922ab2960ca0ee8705874b29aeb28b7271e2f19d"
    assert get_dataset("PneumoniaMNIST") is registry.PNEUMONIAMNIST
    with pytest.raises(DatasetError, match="Known data sets"):
        get_dataset("imagenet")


def test_remote_file_rejects_malformed_hashes_and_names():
    with pytest.raises(ValueError, match="known_hash"):
        RemoteFile("a.bin", known_hash="sha256:abc")
    with pytest.raises(ValueError, match="plain file name"):
        RemoteFile("../a.bin")
    with pytest.raises(ValueError, match="archive"):
        RemoteFile("a.rar", archive="rar")
    assert RemoteFile("a", known_hash="a" * 64).sha256 == "a" * 64
    assert RemoteFile("a", known_hash="md5:" + "b" * 32).sha256 is None


# --- The RSNA 2021 workshop's Teachable Machine projects ----------------------------------------------------


def _git_blob_id(path: Path) -> str:
    """The blob id git itself computes (an independent check of file_hashes' 'gitblob')."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    return subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()


def test_git_blob_id_matches_git(tmp_path):
    for data in (b"", b"hello\n", PAYLOAD):
        path = tmp_path / "f.bin"
        path.write_bytes(data)
        assert file_hashes(path)["gitblob"] == _git_blob_id(path)
    assert file_hashes(tmp_path / "f.bin")["gitblob"] != _sha(PAYLOAD)[:40]


def test_workshop_projects_download_and_verify_by_sha256_and_git_blob_id(server, tmp_path):
    """The registry's four projects, served from loopback: files made here, hashed the way the registry hashes the
    real ones (SHA-256 for exp_1/exp_5, git blob id for exp_2/exp_3); the downloads open as projects; a file with
    the wrong content is refused by either kind of checksum and nothing is kept."""
    import dataclasses

    import numpy as np

    base, www, _ = server
    rng = np.random.default_rng(0)
    files = []
    for entry in get_dataset("rsna_ich_workshop_tm").files:
        images = {c: [rng.integers(0, 255, (32, 32), dtype=np.uint8) for _ in range(3)] for c in ("normal", "ich")}
        path = real.write_tm_project(images, www / entry.name, epochs=15, size=32)
        digest = f"gitblob:{_git_blob_id(path)}" if entry.known_hash.startswith("gitblob:") else _sha(path.read_bytes())
        files.append(dataclasses.replace(entry, urls=(f"{base}/{entry.name}",), known_hash=digest, size=None))
    info = dataclasses.replace(get_dataset("rsna_ich_workshop_tm"), files=tuple(files))
    folder = fetch(info, cache=tmp_path / "cache", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["exp_1.tm", "exp_2.tm", "exp_3.tm", "exp_5.tm"]
    project = real.read_tm_project(folder / "exp_2.tm")
    assert len(project.images) == 6 and project.manifest["appdata"]["trainEpochs"] == 15

    for name in ("exp_3.tm", "exp_5.tm"):  # one of each checksum kind, now with other content
        entry = next(f for f in files if f.name == name)
        (www / name).write_bytes(b"not the workshop's project")
        with pytest.raises(ChecksumMismatch, match="does not match the registry"):
            fetch(entry, cache=tmp_path / "other", progress=False)
        assert _leftovers(tmp_path / "other") == []


def test_registered_exp_1_verifies_the_real_file(server, tmp_path, shared_data):
    """The registry's own checksum against the workshop's real exp_1.tm (../shared/data), served from loopback."""
    import dataclasses
    import shutil

    base, www, _ = server
    shutil.copy(shared_data("rsna_ich_workshop", "original_tm_and_zip", "exp_1.tm"), www / "exp_1.tm")
    entry = dataclasses.replace(get_dataset("rsna_ich_workshop_tm").file("exp_1.tm"), urls=(f"{base}/exp_1.tm",))
    path = fetch(entry, cache=tmp_path / "cache", progress=False)
    assert path.stat().st_size == entry.size and _git_blob_id(path) == "8c98af837d5fb92d2393eb7deee12a61f0bf53f4"
    assert len(real.read_tm_project(path).images) == 60


def test_workshop_lesson_loads_a_downloaded_project(server, tmp_path, monkeypatch):
    """DATA_SOURCE="workshop" in 06_workshop_experiments: the registry's exp_1.tm, downloaded (here from loopback),
    verified, cached under the data folder, and read as pictures and labels; a second call does not download."""
    import dataclasses

    import numpy as np

    from helpers import workshop

    base, www, hits = server
    monkeypatch.setenv("MEDIMG_DATA_DIR", str(tmp_path / "data"))
    rng = np.random.default_rng(1)
    images = {c: [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)] for c in ("Normal", "ICH")}
    path = real.write_tm_project(images, www / "exp_1.tm", size=32)
    info = get_dataset("rsna_ich_workshop_tm")
    entry = dataclasses.replace(info.file("exp_1.tm"), urls=(f"{base}/exp_1.tm",), known_hash=_sha(path.read_bytes()),
                                size=None)
    monkeypatch.setitem(REGISTRY, "rsna_ich_workshop_tm", dataclasses.replace(info, files=(entry,)))
    pictures, labels = workshop.load_pictures("workshop", None)
    assert len(pictures) == 8 and labels.tolist() == [0] * 4 + [1] * 4 and pictures[0].shape == (32, 32, 3)
    assert (tmp_path / "data" / "downloads" / "rsna_ich_workshop_tm" / "exp_1.tm").is_file()
    workshop.load_pictures("workshop", "exp_1.tm")
    assert hits == {"/exp_1.tm": 1}
    with pytest.raises(KeyError, match="exp_4.tm"):
        workshop.load_pictures("workshop", "exp_4.tm")  # experiment 4 is experiment 3 trained longer: no file
