"""Readers: the adapters that bring facts from outside (one file per system).

``git`` (``Pygit2GitReader``: desired manifests from a bare mirror) and ``kubernetes``
(``KubernetesClusterReader``: live objects, one LIST per kind and namespace). They implement the
``GitReader`` and ``ClusterReader`` ports and translate every library error into the ports' own.
"""
