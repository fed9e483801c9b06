"""Settings that cannot work together fail at start-up (STYLE: invalid values fail at start-up)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gatekeeper.settings import Settings


def test_half_an_argocd_api_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """ARGOCD_SERVER without its token (or the token alone) would never sync a deferred release."""
    monkeypatch.setenv("GATEKEEPER_ARGOCD_SERVER", "https://argocd.acme.io")
    with pytest.raises(ValidationError, match="ARGOCD_API_TOKEN is not"):
        Settings()
    monkeypatch.setenv("GATEKEEPER_ARGOCD_API_TOKEN", "t")
    assert Settings().ARGOCD_SERVER == "https://argocd.acme.io"
