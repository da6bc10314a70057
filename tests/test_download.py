"""scripts/download_data.py against local sources only (file:// URLs and an http.server on 127.0.0.1):
real downloads are never attempted or faked."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA

SCRIPT = ROOT / "scripts" / "download_data.py"
SHARED_MNIST = SHARED_DATA / "mnist"
MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
needs_mnist = pytest.mark.skipif(
    not all((SHARED_MNIST / f).is_file() for f in MNIST_FILES), reason=f"MNIST files not found under {SHARED_MNIST}"
)


def _load_script():
    spec = importlib.util.spec_from_file_location("download_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dd = _load_script()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/served over http://127.0.0.1:<port>/; yields (folder, base URL, request log)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _fake_mnist(folder: Path) -> dict:
    """Four small stand-in files under the canonical names, and their checksums."""
    sums = {}
    for k, name in enumerate(MNIST_FILES):
        data = f"stand-in {name} {k}".encode() * 100
        (folder / name).write_bytes(data)
        sums[name] = _sha(data)
    return {"mnist": sums}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_download_over_http_verifies_and_then_skips(server, tmp_path):
    served, base, requests = server
    sums = _fake_mnist(served)
    out = io.StringIO()
    folder = dd.download("mnist", tmp_path / "root", urls=[base], checksums=sums, progress=False, out=out)
    assert folder == tmp_path / "root" / "mnist"
    for name in MNIST_FILES:
        assert (folder / name).read_bytes() == (served / name).read_bytes()
    assert out.getvalue().count("(verified)") == 4
    assert not list(folder.glob("*.part"))
    assert sorted(requests) == sorted(f"/{n}" for n in MNIST_FILES)
    # second call: everything present and good, nothing is fetched (the URL would fail anyway)
    out = io.StringIO()
    dd.download("mnist", tmp_path / "root", urls=["http://127.0.0.1:9/"], checksums=sums, progress=False, out=out)
    assert out.getvalue().count("checksum OK, skipped") == 4 and len(requests) == 4


def test_checksum_mismatch_deletes_the_file_and_fails(server, tmp_path):
    served, base, _ = server
    sums = _fake_mnist(served)
    sums["mnist"]["t10k-labels-idx1-ubyte.gz"] = "0" * 64
    with pytest.raises(dd.DownloadError, match="checksum mismatch for t10k-labels-idx1-ubyte.gz") as err:
        dd.download("mnist", tmp_path / "root", urls=[base], checksums=sums, progress=False, out=io.StringIO())
    assert "deleted" in str(err.value)
    folder = tmp_path / "root" / "mnist"
    assert not (folder / "t10k-labels-idx1-ubyte.gz").exists() and not list(folder.glob("*.part"))
    assert (folder / "train-images-idx3-ubyte.gz").is_file()  # the good ones stay


def test_mirrors_are_tried_in_order_and_a_bad_present_file_is_replaced(server, tmp_path):
    served, base, requests = server
    sums = _fake_mnist(served)
    folder = tmp_path / "root" / "mnist"
    folder.mkdir(parents=True)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    out = io.StringIO()
    dd.download(
        "mnist",
        tmp_path / "root",
        urls=[base + "missing/", (served.as_uri() + "/")],
        checksums=sums,
        progress=False,
        out=out,
    )
    assert "downloading again" in out.getvalue()
    for name in MNIST_FILES:
        assert (folder / name).read_bytes() == (served / name).read_bytes()
    assert requests and all(r.startswith("/missing/") for r in requests)  # http 404, then the file:// mirror


def test_all_sources_failing_is_a_clear_error(tmp_path):
    with pytest.raises(dd.DownloadError, match="every source failed") as err:
        dd.download(
            "mnist",
            tmp_path,
            urls=[(tmp_path / "none").as_uri() + "/"],
            checksums={"mnist": {}},
            progress=False,
            out=io.StringIO(),
        )
    assert "train-images-idx3-ubyte.gz" in str(err.value)


def test_person_activity_zip_is_extracted_and_reported_unverified(tmp_path):
    content = b"A01,010-000-024-033,633790226051280329,27.05.2009 14:03:25:127,4.06,1.89,0.51,walking\n"
    archive = tmp_path / "par.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ConfLongDemo_JSI.txt", content)
        zf.writestr("readme.txt", b"x")
    out = io.StringIO()
    folder = dd.download(
        "person_activity",
        tmp_path / "root",
        urls=[archive.as_uri()],
        checksums={"person_activity": {"ConfLongDemo_JSI.txt": None}},
        progress=False,
        out=out,
    )
    assert (folder / "ConfLongDemo_JSI.txt").read_bytes() == content
    assert sorted(p.name for p in folder.iterdir()) == ["ConfLongDemo_JSI.txt"]  # zip and temp folder gone
    text = out.getvalue()
    assert _sha(content) in text and "could not be verified" in text and "(verified)" not in text


def test_checksum_file_holds_the_known_hashes():
    sums = dd.load_checksums()
    assert set(sums) == set(dd.SOURCES)
    assert sums["mnist"]["train-images-idx3-ubyte.gz"] == (
        "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971"
    )
    assert set(sums["mnist"]) == set(MNIST_FILES) and sums["person_activity"]["ConfLongDemo_JSI.txt"] is None


def test_unknown_dataset_lists_choices(tmp_path):
    proc = _cli("cifar", "--root", str(tmp_path))
    assert proc.returncode == 2 and "mnist" in proc.stderr and "person_activity" in proc.stderr
    with pytest.raises(ValueError, match="choose one of"):
        dd.download("cifar", tmp_path)


@needs_mnist
def test_verify_only_on_the_shared_copy_in_place():
    proc = _cli("mnist", "--root", str(SHARED_MNIST.parent), "--verify-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("  OK  ") == 4 and "MISMATCH" not in proc.stdout


@needs_mnist
def test_cli_download_with_real_checksums_then_verify(tmp_path):
    """The command line with the real MNIST hashes, served from a tmp copy through an env-var mirror."""
    served = tmp_path / "served"
    served.mkdir()
    for name in MNIST_FILES:
        shutil.copy(SHARED_MNIST / name, served / name)
    env = {"NAC_DOWNLOAD_URLS_MNIST": served.as_uri() + "/"}
    proc = _cli("mnist", "--root", str(tmp_path / "root"), "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(verified)") == 4
    proc = _cli("mnist", "--root", str(tmp_path / "root"), "--verify-only")
    assert proc.returncode == 0 and proc.stdout.count("  OK  ") == 4
    # a damaged file: verify-only reports it (and leaves it alone), a download replaces it
    bad = tmp_path / "root" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(b"damaged")
    proc = _cli("mnist", "--root", str(tmp_path / "root"), "--verify-only")
    assert proc.returncode == 1 and "MISMATCH" in proc.stdout and bad.read_bytes() == b"damaged"
    proc = _cli("mnist", "--root", str(tmp_path / "root"), "--no-progress", env=env)
    assert proc.returncode == 0 and proc.stdout.count("checksum OK, skipped") == 3
    assert bad.read_bytes() == (SHARED_MNIST / bad.name).read_bytes()


def test_cli_mismatch_exits_non_zero(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for name in MNIST_FILES:
        (served / name).write_bytes(b"not mnist")
    proc = _cli(
        "mnist",
        "--root",
        str(tmp_path / "root"),
        "--no-progress",
        env={"NAC_DOWNLOAD_URLS_MNIST": served.as_uri() + "/"},
    )
    assert proc.returncode == 1 and "checksum mismatch" in proc.stderr and "deleted" in proc.stderr
    assert not list((tmp_path / "root" / "mnist").iterdir())


def test_verify_only_reports_missing_files(tmp_path):
    proc = _cli("all", "--root", str(tmp_path), "--verify-only")
    assert proc.returncode == 1 and proc.stdout.count("MISSING") == sum(len(s["files"]) for s in dd.SOURCES.values())
    assert "python scripts/download_data.py all" in proc.stderr
    assert not any(tmp_path.iterdir())  # verify-only writes nothing


def test_files_in_a_zip_nested_in_the_archive_are_extracted_and_verified(tmp_path):
    """C-MAPSS ships its .txt files in CMAPSSData.zip inside the outer zip."""
    files = {f"{kind}_FD00{i}.txt": f"{kind} {i}\n".encode() for kind in ("train", "test", "RUL") for i in (1, 2, 3, 4)}
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for name, content in files.items():
            zf.writestr(f"CMAPSSData/{name}", content)
    archive = tmp_path / "outer.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("6. Turbofan/CMAPSSData.zip", inner.getvalue())
        zf.writestr("6. Turbofan/Damage Propagation Modeling.pdf", b"%PDF")
    sums = {"cmapss": {name: _sha(content) for name, content in files.items()}}
    out = io.StringIO()
    folder = dd.download("cmapss", tmp_path / "root", urls=[archive.as_uri()], checksums=sums, progress=False, out=out)
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    assert (folder / "RUL_FD003.txt").read_bytes() == b"RUL 3\n" and out.getvalue().count("(verified)") == 12
    sums["cmapss"]["test_FD004.txt"] = _sha(b"something else")
    (folder / "test_FD004.txt").unlink()
    with pytest.raises(dd.DownloadError, match="checksum mismatch for test_FD004.txt"):
        dd.download(
            "cmapss", tmp_path / "root", urls=[archive.as_uri()], checksums=sums, progress=False, out=io.StringIO()
        )


@pytest.mark.skipif(not (SHARED_DATA / "cmapss" / "train_FD001.txt").is_file(), reason="no shared C-MAPSS copy")
def test_shared_cmapss_files_match_the_published_checksums():
    out = io.StringIO()
    assert dd.verify("cmapss", SHARED_DATA, out=out)  # the shared copy now holds all of FD001-FD004
    text = out.getvalue()
    assert text.count("  OK  ") == 12 and "MISMATCH" not in text and "MISSING" not in text
