"""The OpenAPI document: served, checked in, and in step with the app's routes."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from starlette.routing import Route, WebSocketRoute

from bitsd.daemon import openapi
from bitsd.daemon.service import Daemon

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


async def test_served_document_equals_the_checked_in_file(api: aiohttp.ClientSession) -> None:
    """GET /v1/openapi.json is docs/openapi.json (regenerate it with
    ``python -m bitsd.daemon.openapi > docs/openapi.json``)."""
    async with api.get("/v1/openapi.json") as response:
        served = await response.json()
    assert served == openapi.DOCUMENT
    assert DOCS.read_text(encoding="utf-8") == openapi.render()


def test_every_route_is_documented_and_every_documented_route_exists(daemon: Daemon) -> None:
    """The (path, method) pairs of the app's routes are exactly the document's operations; the
    WebSocket is documented as the GET that upgrades."""
    routed = set()
    for route in daemon.app.routes:
        if isinstance(route, Route):
            routed |= {(route.path, m.lower()) for m in route.methods or () if m != "HEAD"}
        else:
            assert isinstance(route, WebSocketRoute)
            routed.add((route.path, "get"))
    paths = openapi.DOCUMENT["paths"]
    documented = {(path, method) for path, item in paths.items() for method in item}
    assert routed == documented


def test_every_reference_resolves() -> None:
    """Each ``$ref`` of the document names a component that exists."""

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    found = refs(openapi.DOCUMENT)
    assert found
    for ref in found:
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in openapi.DOCUMENT["components"][section], ref
