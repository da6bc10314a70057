"""Download the benchmark datasets from their publishers and verify their SHA-256.

    python scripts/download_data.py mnist                     # into ./datasets/mnist/
    python scripts/download_data.py all --root /data/nac      # every dataset, into /data/nac/<dataset>/
    python scripts/download_data.py mnist --root ../shared/data --verify-only   # check files, no network

Files land in ``<root>/<dataset>/`` (``--root`` defaults to ``./datasets``, the harness's default data
root). Each file is checked against ``datasets/checksums.json``: a file already present with the right
checksum is skipped; a download with the wrong checksum is deleted and the script exits non-zero.
Where the checksum is not known (``null``), the script prints the computed hash and says the file
could not be verified. Mirrors are tried in order; override them (e.g. for an internal mirror) with
``NAC_DOWNLOAD_URLS_<DATASET>`` (comma-separated; MNIST: base URLs the file names are appended to;
Person Activity and C-MAPSS: URLs of the zip archive; zips nested in it are searched too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKSUMS = REPO_ROOT / "datasets" / "checksums.json"
USER_AGENT = "nac-bench-download/0.1 (+https://github.com; python urllib)"

#: dataset -> how to fetch it. ``base_urls``: file URL = base + file name; ``archive_urls``: one zip
#: holding the listed files (matched by base name).
SOURCES = {
    "mnist": {
        "files": [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ],
        "base_urls": [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        "card": "LeCun, Cortes & Burges, MNIST; CC BY-SA 3.0",
    },
    "person_activity": {
        "files": ["ConfLongDemo_JSI.txt"],
        "archive_urls": ["https://archive.ics.uci.edu/static/public/196/localization+data+for+person+activity.zip"],
        "card": "UCI ML repository, dataset 196 (Kaluza et al. 2010); CC BY 4.0",
    },
    "cmapss": {
        "files": [f"{kind}_FD00{i}.txt" for kind in ("train", "test", "RUL") for i in (1, 2, 3, 4)],
        # NASA PCoE data repository, mirrored on the PHM Society's S3; the .txt files sit in a zip
        # (CMAPSSData.zip) inside the outer zip
        "archive_urls": [
            "https://phm-datasets.s3.amazonaws.com/NASA/6.+Turbofan+Engine+Degradation+Simulation+Data+Set.zip"
        ],
        "card": "NASA C-MAPSS turbofan engine degradation (Saxena et al. 2008); US Government work",
    },
}
CHOICES = [*SOURCES, "all"]


class DownloadError(RuntimeError):
    """A dataset could not be fetched or verified (the message says what to do)."""


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_checksums(path: Path = CHECKSUMS) -> dict:
    data = json.loads(Path(path).read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def urls_for(name: str) -> list[str]:
    """Mirror URLs of ``name``: ``$NAC_DOWNLOAD_URLS_<NAME>`` (comma-separated) or the built-in list."""
    env = os.environ.get(f"NAC_DOWNLOAD_URLS_{name.upper()}")
    if env:
        return [u.strip() for u in env.split(",") if u.strip()]
    spec = SOURCES[name]
    return list(spec.get("base_urls") or spec["archive_urls"])


def fetch(url: str, dest: Path, timeout: float = 60.0, progress: bool | None = None) -> None:
    """Stream ``url`` into ``dest`` (via urllib) with a tqdm progress bar."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        total = response.headers.get("Content-Length")
        with tqdm(
            total=int(total) if total else None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name.removesuffix(".part"),
            leave=False,
            disable=None if progress is None else not progress,
        ) as bar:  # None: only on a terminal
            while block := response.read(1 << 16):
                out.write(block)
                bar.update(len(block))


def check_file(path: Path, expected: str | None) -> tuple[str, str]:
    """``(status, sha256)`` of a file: status OK, MISMATCH, UNVERIFIED (no known checksum) or MISSING."""
    if not path.is_file():
        return "MISSING", ""
    digest = sha256(path)
    if expected is None:
        return "UNVERIFIED", digest
    return ("OK" if digest == expected.lower() else "MISMATCH"), digest


def _report(status: str, path: Path, digest: str, expected: str | None, out) -> None:
    if status == "OK":
        print(f"  OK          {path}  sha256 {digest}", file=out)
    elif status == "UNVERIFIED":
        print(
            f"  UNVERIFIED  {path}  sha256 {digest} (no known checksum in {CHECKSUMS.name}: could not be verified)",
            file=out,
        )
    elif status == "MISMATCH":
        print(f"  MISMATCH    {path}  sha256 {digest}, expected {expected}", file=out)
    else:
        print(f"  MISSING     {path}", file=out)


def verify(name: str, root: Path, checksums: dict | None = None, out=sys.stdout) -> bool:
    """Check the files of ``name`` under ``root/name`` (read-only). True when none is missing or bad."""
    checksums = load_checksums() if checksums is None else checksums
    folder = Path(root) / name
    print(f"{name}: verifying {folder}", file=out)
    good = True
    for file in SOURCES[name]["files"]:
        expected = checksums.get(name, {}).get(file)
        status, digest = check_file(folder / file, expected)
        _report(status, folder / file, digest, expected, out)
        good &= status in ("OK", "UNVERIFIED")
    return good


def _verify_new(part: Path, final: Path, expected: str | None, url: str, out) -> None:
    """Move a finished download into place if its checksum is right; else delete it and raise."""
    digest = sha256(part)
    if expected is not None and digest != expected.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {final.name} from {url}: got sha256 {digest}, expected "
            f"{expected}; the bad file was deleted"
        )
    os.replace(part, final)
    if expected is None:
        print(
            f"  UNVERIFIED  {final}  sha256 {digest} (no known checksum: could not be verified; compare it "
            "with the publisher's if one is published)",
            file=out,
        )
    else:
        print(f"  OK          {final}  sha256 {digest} (verified)", file=out)


def _extract_needed(
    archive: Path, needed: list[str], folder: Path, tmp: Path, sums: dict, url: str, out, depth: int = 0
) -> list[str]:
    """Extract the files named in ``needed`` (matched by base name) from ``archive`` into ``folder``,
    looking inside zips nested in it (up to two levels); verify each one. Returns the names not found."""
    remaining = list(needed)
    with zipfile.ZipFile(archive) as zf:
        members = {Path(m).name: m for m in zf.namelist() if not m.endswith("/")}
        for file in [f for f in remaining if f in members]:
            part = folder / (file + ".part")
            with zf.open(members[file]) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            _verify_new(part, folder / file, sums.get(file), url, out)
            remaining.remove(file)
        nested = [m for m in zf.namelist() if m.lower().endswith(".zip")] if depth < 2 else []
        for i, member in enumerate(nested):
            if not remaining:
                break
            inner = tmp / f"nested-{depth}-{i}.zip"
            with zf.open(member) as src, open(inner, "wb") as dst:
                shutil.copyfileobj(src, dst)
            remaining = _extract_needed(inner, remaining, folder, tmp, sums, url, out, depth + 1)
            inner.unlink(missing_ok=True)
    return remaining


def _try_mirrors(urls: list[str], attempt) -> None:
    errors = []
    for url in urls:
        try:
            attempt(url)
            return
        except (OSError, DownloadError, zipfile.BadZipFile, KeyError) as err:  # URLError is an OSError
            errors.append(f"{url}: {err}")
            print(f"  failed: {url}: {err}", file=sys.stderr)
    raise DownloadError("every source failed:\n    " + "\n    ".join(errors))


def download(
    name: str,
    root: Path,
    urls: list[str] | None = None,
    checksums: dict | None = None,
    progress: bool | None = None,
    out=sys.stdout,
) -> Path:
    """Download dataset ``name`` into ``root/name``; returns that folder. Raises DownloadError."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {CHOICES}")
    checksums = load_checksums() if checksums is None else checksums
    urls = urls_for(name) if urls is None else list(urls)
    spec = SOURCES[name]
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{name}: into {folder} ({spec['card']})", file=out)

    needed = []
    for file in spec["files"]:
        expected = checksums.get(name, {}).get(file)
        status, digest = check_file(folder / file, expected)
        if status == "OK":
            print(f"  present     {folder / file}  checksum OK, skipped", file=out)
        elif status == "UNVERIFIED":
            print(
                f"  present     {folder / file}  sha256 {digest}, skipped (no known checksum: could not be verified)",
                file=out,
            )
        else:
            if status == "MISMATCH":
                print(f"  bad         {folder / file}  sha256 {digest} != {expected}: downloading again", file=out)
            needed.append(file)
    if not needed:
        return folder

    if "base_urls" in spec:
        for file in needed:
            final, part = folder / file, folder / (file + ".part")
            expected = checksums.get(name, {}).get(file)

            def attempt(url: str, final=final, part=part, expected=expected):
                try:
                    fetch(url, part, progress=progress)
                except BaseException:
                    part.unlink(missing_ok=True)
                    raise
                _verify_new(part, final, expected, url, out)

            _try_mirrors([base if base.endswith(file) else base.rstrip("/") + "/" + file for base in urls], attempt)
    else:

        def attempt(url: str):
            with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
                archive = Path(tmp) / "archive.zip"
                fetch(url, archive, progress=progress)
                missing = _extract_needed(archive, needed, folder, Path(tmp), checksums.get(name, {}), url, out)
                if missing:
                    raise DownloadError(f"{', '.join(missing)} not found in the archive from {url}")

        _try_mirrors(urls, attempt)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", choices=CHOICES, help="which dataset to fetch (all: every one)")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("datasets"),
        help="data root; files go to ROOT/<dataset>/ (default: ./datasets)",
    )
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="only check the SHA-256 of files already there (no network, nothing written)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    names = list(SOURCES) if args.dataset == "all" else [args.dataset]
    failed = []
    for name in names:
        if args.verify_only:
            if not verify(name, args.root):
                failed.append(name)
            continue
        try:
            download(name, args.root, progress=False if args.no_progress else None)
        except DownloadError as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            failed.append(name)
    if failed:
        what = "verification" if args.verify_only else "download"
        print(
            f"error: {what} failed for {', '.join(failed)}"
            + (
                ""
                if not args.verify_only
                else f" (fetch them with: python scripts/download_data.py "
                f"{failed[0] if len(failed) == 1 else 'all'} --root {args.root})"
            ),
            file=sys.stderr,
        )
        return 1
    print("no missing or bad files" if args.verify_only else "done", file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
