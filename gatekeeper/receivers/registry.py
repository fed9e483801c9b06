"""The receiver registry: source name -> receiver (Flux's factory map). One entry per file."""

from __future__ import annotations

from gatekeeper.receivers import Receiver
from gatekeeper.receivers.argocd import ArgoCDReceiver
from gatekeeper.receivers.flux import FluxReceiver
from gatekeeper.receivers.github import GitHubReceiver
from gatekeeper.receivers.gitlab import GitLabReceiver


def registry(argocd_namespace: str = "argocd") -> dict[str, Receiver]:
    """``argocd_namespace``: the Argo CD control plane's (ARGOCD_NAMESPACE), where an Application
    is named without its namespace."""
    return {
        "github": GitHubReceiver(),
        "gitlab": GitLabReceiver(),
        "flux": FluxReceiver(),
        "argocd": ArgoCDReceiver(argocd_namespace),
    }
