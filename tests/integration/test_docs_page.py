"""/docs works offline: every file the page loads comes from the API itself."""

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from tests.support import Booking

pytestmark = pytest.mark.integration


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
