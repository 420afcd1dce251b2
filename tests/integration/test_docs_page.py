"""/docs works offline: every file the page loads comes from the API itself, and a real
browser with no way out of 127.0.0.1 renders every operation.

The browser is Debian's headless Chromium. CI installs it (.ci/run) and fails without it; a
developer machine without it reports the browser test skipped, naming the package, so
`make test` still runs on a machine with only Python.
"""

import asyncio
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.booking.entrypoints.api.app import ENDPOINTS
from tests.support import Booking

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_SECONDS = 120  # only a bound against a hang
# Names resolve to nothing and anything not on loopback goes to a proxy that refuses, so a
# page that needs the outside (a CDN, by name or by address) renders nothing.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           "--proxy-server=http://127.0.0.1:9"]  # loopback bypasses a proxy by default


class Links(HTMLParser):
    """Every URL a page loads: src and href attributes, and the scripts written inline."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


async def test_docs_loads_only_same_origin_files_that_answer(booking: Booking) -> None:
    page = await booking.http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    links = Links()
    links.feed(page.text)
    assert len(links.urls) >= 2, page.text
    for url in links.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
    assert ["/openapi.json" in script for script in links.inline] == [True]

    wanted = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for url in links.urls:
        asset = await booking.http.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rindex("."):]
        assert asset.headers["content-type"].startswith(wanted[suffix]), (url, asset.headers)
        assert asset.content, url
    script = next(url for url in links.urls if url.endswith(".js"))
    assert b"SwaggerUIBundle" in (await booking.http.get(script)).content


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed (apt-get install chromium); CI installs it")
    assert CHROMIUM is not None, "CI needs chromium for the browser test (.ci/run installs it)"
    return CHROMIUM


async def test_a_browser_cut_off_from_the_outside_renders_every_operation(
    api_url: str, chromium: str, tmp_path: Path,
) -> None:
    process = await asyncio.create_subprocess_exec(
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path}", *OFFLINE,
        # Virtual time runs until the page is idle or the budget is spent, then the DOM is dumped.
        "--virtual-time-budget=30000", "--dump-dom", f"{api_url}/docs",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    dom, errors = await asyncio.wait_for(process.communicate(), BROWSER_SECONDS)
    assert process.returncode == 0, errors.decode(errors="replace")[-5000:]
    page = dom.decode()
    shown = [f'id="operations-{endpoint.tag}-{endpoint.operation_id}"'
             for endpoint in ENDPOINTS if endpoint.documented]
    missing = [operation for operation in shown if operation not in page]
    assert not missing, (missing, page[-3000:])
    assert page.count('class="opblock ') >= len(shown)
