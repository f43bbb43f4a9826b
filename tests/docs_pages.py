"""Check that a service's docs pages load every script and style from the service itself."""

from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx

DOCS_PAGES = ("/docs", "/redoc")


class _AssetCollector(HTMLParser):
    """The URLs a page's ``<script src>``, ``<link href>`` and ``<img src>`` load."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attribute = {"script": "src", "img": "src", "link": "href"}.get(tag)
        url = dict(attrs).get(attribute) if attribute else None
        if url:
            self.urls.append(url)


def asset_urls(page: str) -> list[str]:
    """The scripts, styles and images an HTML page loads, in page order."""
    collector = _AssetCollector()
    collector.feed(page)
    return collector.urls


def docs_asset_problems(get: Callable[[str], httpx.Response]) -> list[str]:
    """What keeps the docs pages from working offline; empty when nothing does.

    ``get`` fetches a path from the service (a ``TestClient`` or a running stack).
    Each page must answer 200 and load at least one script, and each URL it loads
    must be on the service itself and answer 200 with a body.
    """
    problems: list[str] = []
    for page in DOCS_PAGES:
        answer = get(page)
        if answer.status_code != 200:
            problems.append(f"{page} answered {answer.status_code}")
            continue
        urls = asset_urls(answer.text)
        if not any(url.endswith(".js") for url in urls):
            problems.append(f"{page} loads no script: {urls}")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc:
                problems.append(f"{page} loads {url} from another host")
                continue
            asset = get(url)
            if asset.status_code != 200 or not asset.content:
                problems.append(f"{page} loads {url}, which answered {asset.status_code}")
    return problems
