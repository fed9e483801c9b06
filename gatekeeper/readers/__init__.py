"""Readers: adapters that fetch what gatekeeper reads from systems it does not own, one module per
system: ``calendar_feeds`` (published iCalendar URLs over HTTP), ``git`` (``Pygit2GitReader``:
desired manifests from a bare mirror) and ``kubernetes`` (``KubernetesClusterReader``: live
objects, one LIST per kind and namespace). Each raises only its own or its port's error types and
knows nothing of the service or the API."""
