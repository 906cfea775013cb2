"""Tests for segline.lineage.fetch against a local HTTP server (127.0.0.1, in a thread)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from segline.errors import InputError
from segline.lineage.fetch import fetch, main, part_path
from segline.lineage.lineagefile import parse_lineage

FETCH = Path(__file__).resolve().parents[1] / "preprocess" / "fetch.py"
PAYLOAD = hashlib.sha256(b"seed").digest() * 1000  # 32 000 bytes, incompressible
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes); knobs to misbehave; logs each request's Range."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {"/files/x.tar": PAYLOAD}
        self.ignore_range = False
        self.cut_after: int | None = None  # send only this many body bytes, then hang up
        self.log: list[tuple[str, str | None]] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RangeHandler(BaseHTTPRequestHandler):
    """GET with support for ``Range: bytes=N-`` (206 / 416), like S3."""

    server: FileServer

    def do_GET(self) -> None:
        srv = self.server
        wanted = self.headers.get("Range")
        srv.log.append((self.path, wanted))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
        if match and not srv.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after is not None:
            body = body[: srv.cut_after]
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not intercept requests to 127.0.0.1."""
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "lineage").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lineage_for(repo: Path, source: str, md5: str = MD5, name: str = "x.lineage") -> Path:
    path = repo / "lineage" / name
    path.write_text(f"# source: {source}\n# licence: test\n{md5}  data/x.tar\n")
    return path


def only_files(folder: Path) -> list[str]:
    """Files in ``folder`` but the download's lock (``.x.tar.lock``, segline.stage)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_full_download(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    result = fetch(lin, "data/x.tar")
    assert (repo / "data" / "x.tar").read_bytes() == PAYLOAD
    assert only_files(repo / "data") == ["x.tar"]
    assert (result.size, result.resumed_from, result.already_present) == (len(PAYLOAD), 0, False)
    assert result.url == server.base + "/files/x.tar"
    assert server.log == [("/files/x.tar", None)]


def test_resume_partial(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    (repo / "data").mkdir()
    part_path(repo / "data" / "x.tar").write_bytes(PAYLOAD[:12345])
    result = fetch(lin, "data/x.tar")
    assert server.log == [("/files/x.tar", "bytes=12345-")]
    assert result.resumed_from == 12345
    assert (repo / "data" / "x.tar").read_bytes() == PAYLOAD
    assert only_files(repo / "data") == ["x.tar"]


def test_server_ignoring_range_restarts(repo: Path, server: FileServer) -> None:
    server.ignore_range = True
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    (repo / "data").mkdir()
    part_path(repo / "data" / "x.tar").write_bytes(PAYLOAD[:5000])
    result = fetch(lin, "data/x.tar")
    assert server.log == [("/files/x.tar", "bytes=5000-")]  # asked, got 200 + whole file
    assert result.resumed_from == 0
    assert (repo / "data" / "x.tar").read_bytes() == PAYLOAD  # not 5000 bytes too long


def test_complete_part_and_416(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    (repo / "data").mkdir()
    part_path(repo / "data" / "x.tar").write_bytes(PAYLOAD)
    result = fetch(lin, "data/x.tar")
    assert result.resumed_from == len(PAYLOAD)
    assert (repo / "data" / "x.tar").read_bytes() == PAYLOAD
    assert only_files(repo / "data") == ["x.tar"]


def test_md5_mismatch_leaves_nothing(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar", md5="0" * 32))
    with pytest.raises(InputError) as exc:
        fetch(lin, "data/x.tar")
    assert str(exc.value) == (
        f"data/x.tar: downloaded md5 {MD5} does not match {lin.path} ({'0' * 32}); removed it; "
        f"source: {server.base}/files/x.tar"
    )
    assert only_files(repo / "data") == []


def test_stale_part_gives_mismatch_then_clean_retry(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    (repo / "data").mkdir()
    part_path(repo / "data" / "x.tar").write_bytes(b"\xff" * 100)  # not a prefix of the file
    with pytest.raises(InputError, match="downloaded md5 .* does not match"):
        fetch(lin, "data/x.tar")
    assert only_files(repo / "data") == []
    fetch(lin, "data/x.tar")  # the next run starts from scratch and succeeds
    assert (repo / "data" / "x.tar").read_bytes() == PAYLOAD


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused(repo: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/files/x.tar"
    lin = parse_lineage(lineage_for(repo, url))
    with pytest.raises(InputError) as exc:
        fetch(lin, "data/x.tar", timeout=5)
    msg = str(exc.value)
    assert msg.startswith("data/x.tar: download failed (")
    assert "refused" in msg.lower()
    assert f"expected md5 {MD5} from {url}" in msg
    assert msg.endswith(
        "or download it yourself to data/x.tar; for the embedded toy data run with TOY=1"
    )
    assert "\n" not in msg
    assert only_files(repo / "data") == []  # no empty .part left behind


def test_failure_keeps_nonempty_part(repo: Path) -> None:
    lin = parse_lineage(lineage_for(repo, f"http://127.0.0.1:{closed_port()}/files/x.tar"))
    (repo / "data").mkdir()
    part_path(repo / "data" / "x.tar").write_bytes(PAYLOAD[:2048])
    with pytest.raises(InputError, match=r"kept 2\.0 KiB in data/x\.tar\.part, run again to "):
        fetch(lin, "data/x.tar", timeout=5)
    assert part_path(repo / "data" / "x.tar").read_bytes() == PAYLOAD[:2048]


def test_dropped_connection_then_resume(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    server.cut_after = 4000
    with pytest.raises(InputError) as exc:
        fetch(lin, "data/x.tar")
    assert f"connection closed after 4000 of {len(PAYLOAD)} bytes" in str(exc.value)
    assert "run again to resume" in str(exc.value)
    assert only_files(repo / "data") == ["x.tar.part"]
    assert part_path(repo / "data" / "x.tar").read_bytes() == PAYLOAD[:4000]
    server.cut_after = None
    result = fetch(lin, "data/x.tar")
    assert result.resumed_from == 4000
    assert server.log[-1] == ("/files/x.tar", "bytes=4000-")
    assert (repo / "data" / "x.tar").read_bytes() == PAYLOAD


def test_http_404(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/gone/x.tar"))
    with pytest.raises(InputError, match=r"download failed \(HTTP 404 Not Found\)"):
        fetch(lin, "data/x.tar")
    assert only_files(repo / "data") == []


def test_timeout_is_configurable(repo: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.tar"
        lin = parse_lineage(lineage_for(repo, url))
        began = time.monotonic()
        with pytest.raises(InputError, match=r"download failed \(.*timed out"):
            fetch(lin, "data/x.tar", timeout=0.3)
        assert time.monotonic() - began < 5
    assert only_files(repo / "data") == []


def test_sourceless_lineage(repo: Path) -> None:
    path = repo / "lineage" / "isles.lineage"
    path.write_text(
        "# source: registration required at https://www.isles-challenge.org/\n"
        f"{MD5}  data/isles.zip\n"
    )
    with pytest.raises(InputError) as exc:
        fetch(parse_lineage(path), "data/isles.zip")
    assert str(exc.value) == (
        f"data/isles.zip: no download URL in {path} (source: registration required at "
        "https://www.isles-challenge.org/); get the archive there and put it at data/isles.zip "
        f"(md5 {MD5}), or for the embedded toy data run with TOY=1"
    )
    assert not (repo / "data").exists()


def test_already_present_and_wrong_existing(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    (repo / "data").mkdir()
    (repo / "data" / "x.tar").write_bytes(PAYLOAD)
    assert fetch(lin, "data/x.tar").already_present
    (repo / "data" / "x.tar").write_bytes(b"other")
    with pytest.raises(InputError, match="exists but its md5 .* delete it to download it again"):
        fetch(lin, "data/x.tar")
    assert (repo / "data" / "x.tar").read_bytes() == b"other"  # never deleted
    assert server.log == []


def test_unlisted_target(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    with pytest.raises(InputError, match=r"^data/y\.tar: not listed in"):
        fetch(lin, "data/y.tar")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(repo: Path, server: FileServer) -> None:
    lin = parse_lineage(lineage_for(repo, server.base + "/files/x.tar"))
    log = io.StringIO()
    fetch(lin, "data/x.tar", progress=log)
    assert log.getvalue() == ""
    (repo / "data" / "x.tar").unlink()
    tty = FakeTTY()
    fetch(lin, "data/x.tar", progress=tty)
    text = tty.getvalue()
    assert text.startswith("\rdata/x.tar: ") and text.endswith("\n")
    assert "31.2 KiB / 31.2 KiB (100%)" in text


def test_main_prints_one_line(
    repo: Path, server: FileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    lineage_for(repo, server.base + "/files/x.tar")
    assert main(["--lineage", "lineage/x.lineage", "--timeout", "5", "data/x.tar"]) == 0
    assert capsys.readouterr().out == (
        f"fetched data/x.tar (31.2 KiB, md5 ok) from {server.base}/files/x.tar\n"
    )
    assert main(["--lineage", "lineage/x.lineage", "data/x.tar"]) == 0
    assert capsys.readouterr().out == "data/x.tar already present (md5 ok)\n"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(
        [sys.executable, str(FETCH), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_download(repo: Path, server: FileServer) -> None:
    lineage_for(repo, server.base + "/files/x.tar")
    res = run_cli("--lineage", "lineage/x.lineage", "data/x.tar", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # not a terminal: no progress line
    assert res.stdout.startswith("fetched data/x.tar (31.2 KiB, md5 ok)")
    assert (repo / "data" / "x.tar").read_bytes() == PAYLOAD


@pytest.mark.parametrize("case", ["sourceless", "refused"])
def test_cli_errors_are_one_line(repo: Path, case: str) -> None:
    if case == "sourceless":
        lineage_for(repo, "registration required at https://example.org/")
    else:
        lineage_for(repo, f"http://127.0.0.1:{closed_port()}/x.tar")
    res = run_cli("--lineage", "lineage/x.lineage", "--timeout", "5", "data/x.tar", cwd=repo)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("segline: data/x.tar: ")
    assert "TOY=1" in lines[0] and MD5 in lines[0]
    assert only_files(repo / "data") == []


@pytest.mark.parametrize("value", ["nan", "inf", "0"])
def test_timeout_must_be_finite_and_positive(value: str) -> None:
    with pytest.raises(InputError, match=r"^--timeout: must be a finite number > 0"):
        main(["--lineage", "lineage/x.lineage", "--timeout", value, "data/x.tar"])


def test_second_download_waits_and_finds_the_archive(tmp_path: Path, monkeypatch) -> None:
    """Two makes fetching one archive: the second waits for the first's lock, then
    finds the archive in place (already_present) instead of appending to its .part."""
    from segline import stage

    data = b"payload" * 1000
    lineage_path = tmp_path / "x.lineage"
    lineage_path.write_text(
        f"# source: http://127.0.0.1:9/x.tar\n{hashlib.md5(data).hexdigest()}  data/x.tar\n"
    )
    monkeypatch.chdir(tmp_path)
    target = Path("data/x.tar")
    target.parent.mkdir()
    lineage = parse_lineage(lineage_path)
    results: list = []
    with stage.target_lock(target):
        worker = threading.Thread(target=lambda: results.append(fetch(lineage, target)))
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive(), "the second download waits for the lock"
        target.write_bytes(data)  # the first one finishes
    worker.join(timeout=30)
    assert results and results[0].already_present
