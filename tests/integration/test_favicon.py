"""The site has an icon: pages link it, and /favicon.ico leads to it instead of a 404."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def _loads_as_an_icon(client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, url
    assert response.mimetype == "image/svg+xml", url
    return response.get_data()


def test_every_page_links_an_icon_that_loads(client, browser):
    pages = {
        "/signin": client.application.test_client().get("/signin"),  # signed out
        "/": browser.client.get("/"),  # the dashboard
        "/missing": browser.client.get("/no/such/page"),  # an error page
    }
    for path, response in pages.items():
        link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', response.text)
        assert link, f"{path} links no icon"
        assert _loads_as_an_icon(client, link.group(1)).startswith(b"<svg"), path


def test_favicon_ico_redirects_to_the_icon_instead_of_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    target = response.headers["Location"]
    assert urlsplit(target).path == "/static/favicon.svg"
    assert _loads_as_an_icon(client, target).startswith(b"<svg")
