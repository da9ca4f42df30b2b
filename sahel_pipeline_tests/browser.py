"""Headless Chromium (Debian's `chromium`) opening a report as a reader's browser would: its layout measured at a
given window width, and a screenshot.

The page is opened in a frame of the width asked for (headless Chromium's window is at least 500 px wide, so a
phone's 420 px must be a frame's), in a copy with a script that measures it once loaded and posts what it found to
the frame's parent, which writes it down; `--dump-dom` prints the parent page as it then is. No DevTools client is
needed.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"  # kept by CI, ignored by git

_MEASURE = """
<script>
window.addEventListener('load', () => {
  const root = document.documentElement;
  const images = [...document.images];
  const found = {
    width: window.innerWidth,
    scrollWidth: root.scrollWidth,
    clientWidth: root.clientWidth,
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt.slice(0, 60)),
    banner: (document.querySelector('.synthetic') || {}).textContent || '',
    wide: [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
      .filter(e => !e.closest('.scroll')).slice(0, 5).map(e => e.tagName + '.' + e.className),
  };
  parent.postMessage(JSON.stringify(found), '*');
});
</script>
"""
_FRAME = """<!doctype html><html><head><meta charset='utf-8'><style>body{{margin:0}} iframe{{border:0;display:block}}
</style></head><body><iframe src='{src}' style='width:{width}px;height:{height}px'></iframe>
<script>window.addEventListener('message', e => {{
  const out = document.createElement('pre'); out.id = 'measured'; out.textContent = 'MEASURED' + e.data + 'END';
  document.body.appendChild(out);
}});</script></body></html>"""


def chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _run(binary: str, url: str, width: int, height: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-extensions", f"--window-size={width},{height}", "--virtual-time-budget=10000", *extra, url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def measure(binary: str, page: Path, width: int, work: Path) -> dict:
    """What the page looks like at `width` CSS pixels: scroll and client width, images that did not decode, the
    synthetic banner's text, and elements wider than the window (outside the tables' scrolling boxes)."""
    copy = work / f"measure-{width}-{page.name}"
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    frame = work / f"frame-{width}.html"
    frame.write_text(_FRAME.format(src=copy.as_uri(), width=width, height=900), encoding="utf-8")
    window = max(width, 500) + 20
    done = _run(binary, frame.as_uri(), window, 960, "--dump-dom", f"--user-data-dir={work / f'profile-{width}'}")
    found = re.search(r'<pre id="measured">MEASURED(.*?)END</pre>', done.stdout, re.S)
    if not found:
        raise AssertionError(f"chromium wrote no measurement (exit {done.returncode}): {done.stderr[-500:]}")
    return json.loads(html.unescape(found.group(1)))


def screenshot(binary: str, page: Path, width: int, height: int, path: Path, work: Path) -> Path:
    """The top `height` pixels of the page at `width` (in a frame, as measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = work / f"shot-{width}.html"
    frame.write_text(_FRAME.format(src=page.as_uri(), width=width, height=height), encoding="utf-8")
    _run(binary, frame.as_uri(), width, height, f"--screenshot={path}", f"--user-data-dir={work / f'shot-{width}'}")
    return path
