"""/docs and /redoc work without internet: every script, style sheet and image is served by the API."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

_REFERENCE = re.compile(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]|(https?://[^\s'"<>)]+)""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_documentation_references_no_external_host(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    references = [local or absolute for local, absolute in _REFERENCE.findall(answer.text)]
    assert references  # the scan finds the assets it must
    external = [ref for ref in references if ref.startswith(("http:", "https:", "//"))]
    assert external == []
    for ref in references:
        assert client.get(ref).status_code == 200, ref  # the asset itself is served
