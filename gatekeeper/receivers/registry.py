"""The receiver registry: source name -> receiver (Flux's factory map). One entry per file."""

from __future__ import annotations

from gatekeeper.receivers import Receiver
from gatekeeper.receivers.argocd import ArgoCDReceiver
from gatekeeper.receivers.flux import FluxReceiver
from gatekeeper.receivers.github import GitHubReceiver
from gatekeeper.receivers.gitlab import GitLabReceiver


def registry() -> dict[str, Receiver]:
    return {
        "github": GitHubReceiver(),
        "gitlab": GitLabReceiver(),
        "flux": FluxReceiver(),
        "argocd": ArgoCDReceiver(),
    }
