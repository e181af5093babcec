"""The HTML report renders in a real browser: headless Debian Chromium takes a screenshot.

The PNG is decoded here (zlib + the five PNG row filters) so the check needs nothing
beyond the standard library: right size, mostly not blank, and the report's own
colours present where the CSS puts them (the red ✗ row near the top, dark code blocks).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftsafe.engine import Engine
from driftsafe.lab.evidence import Evidence
from driftsafe.lab.report import write_report
from driftsafe.lab.timeline import Span, timeline_svg

CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 2000

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing: run scripts/ensure-chromium (apt-get install chromium)",
)


def _add_bytes(x: bytes, y: bytes) -> bytes:
    """Bytewise (x + y) mod 256 over whole rows at once (SWAR on Python ints): fast Up."""
    n = len(x)
    high = int.from_bytes(b"\x80" * n, "big")
    low = high ^ int.from_bytes(b"\xff" * n, "big")
    a, b = int.from_bytes(x, "big"), int.from_bytes(y, "big")
    return (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(n, "big")


def decode_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    header: tuple[int, ...] = ()
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    assert len(raw) == height * (stride + 1)
    prev, rows = bytes(stride), []
    for y in range(height):
        off = y * (stride + 1)
        kind, line = raw[off], raw[off + 1 : off + 1 + stride]
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = _add_bytes(line, prev)
        else:
            buf = bytearray(line)
            for i in range(stride):
                a = buf[i - bpp] if i >= bpp else 0
                if kind == 1:
                    buf[i] = (buf[i] + a) & 255
                elif kind == 3:
                    buf[i] = (buf[i] + ((a + prev[i]) >> 1)) & 255
                else:
                    b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    buf[i] = (buf[i] + pred) & 255
            cur = bytes(buf)
        rows.append(cur)
        prev = cur
    return width, height, bpp, rows


def _pixels(
    rows: list[bytes], bpp: int, top: int = 0, bottom: int | None = None
) -> Iterator[bytes]:
    for row in rows[top:bottom]:
        for i in range(0, len(row), bpp):
            yield row[i : i + 3]


def _report(engine: Engine, tmp_path: Path) -> Path:
    work = tmp_path / "tf"
    work.mkdir()
    (work / "main.tf").write_text('resource "terraform_data" "app" {\n  input = "v1"\n}\n')
    ev = Evidence(tmp_path / "report", title="driftsafe lab drill (render test)")
    ev.step("apply", "Clean apply")
    ev.narrative("apply", "A real `terraform apply`, captured with its **colours**.")
    init = ev.record("apply", engine.run(["init"], cwd=work, timeout=120), title="init")
    run = engine.run(["apply", "-auto-approve"], cwd=work, timeout=120)
    applied = ev.record("apply", run, title="apply")
    ev.check("apply", "apply", "Apply completes", run.returncode == 0, evidence=[init, applied])
    ev.step("lock", "Lock clash")
    t0 = run.started_at
    fig = ev.artifact(
        "lock",
        "Who held the lock",
        timeline_svg(
            [Span("A", t0, t0 + 3, "held", "A"), Span("B", t0 + 1, t0 + 1.4, "failed", "B")],
            title="Who held the lock",
        ),
        kind="svg",
    )
    ev.check("clash", "lock", "A deliberately failing criterion", False, evidence=[fig])
    return write_report(ev).index_html


def screenshot(
    index: Path, shot: Path, width: int, height: int, scratch: Path
) -> subprocess.CompletedProcess[str]:
    """Render ``index`` in headless Chromium into ``shot`` (a fresh profile in ``scratch``).

    Without the background-networking flags Chromium keeps trying hosts this machine's
    closed network refuses."""
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={scratch / 'profile'}",
        f"--screenshot={shot}",
        f"--window-size={width},{height}",
        index.as_uri(),
    ]
    env = {**os.environ, "HOME": str(scratch)}  # chromium writes caches under HOME
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.slow
def test_report_renders_in_chromium(engine: Engine, tmp_path: Path) -> None:
    index = _report(engine, tmp_path)
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    started = time.monotonic()
    proc = screenshot(index, shot, WIDTH, HEIGHT, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file(), proc.stderr[-2000:]
    assert time.monotonic() - started < 180
    shutil.rmtree(profile, ignore_errors=True)

    width, height, bpp, rows = decode_png(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    pixels = list(_pixels(rows, bpp))
    non_white = sum(px != b"\xff\xff\xff" for px in pixels)
    assert non_white > 0.05 * len(pixels), f"blank page? {non_white} non-white pixels"
    # The failed row's background (#fff5f5) is in the checklist, near the top.
    top = list(_pixels(rows, bpp, 0, 700))
    assert sum(px == b"\xff\xf5\xf5" for px in top) > 2000, "no red ✗ row near the top"
    # Dark transcript blocks (#1e2430): the inline CSS was applied.
    assert sum(px == b"\x1e\x24\x30" for px in pixels) > 20000, "no styled code blocks"
