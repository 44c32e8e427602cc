"""Settings for the whole test suite."""

from __future__ import annotations

import pytest

# The proxy settings of the environment: bitsd honours them (PRECONFIG), so a CI machine that
# sets them would route every loopback test through its proxy. Tests that need them set them.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test without proxy variables inherited from the machine."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
