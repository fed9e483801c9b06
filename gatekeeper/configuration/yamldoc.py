"""YAML documents that remember where each value came from, for FILE:LINE messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml


class YamlError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: its data and its node tree (for line lookups)."""

    data: Any
    node: yaml.Node

    @property
    def line(self) -> int:
        return self.node.start_mark.line + 1

    def line_of(self, path: Sequence[str | int]) -> int:
        """The 1-based line of the deepest step of ``path`` that exists.

        A mapping step points at its key (so a missing field is reported at its parent's key,
        and an unknown field at itself); a sequence step at its item.
        """
        node, line = self.node, self.node.start_mark.line + 1
        for step in path:
            found = _child(node, step)
            if found is None:
                break
            key, node = found
            line = (key or node).start_mark.line + 1
        return line


def _child(node: yaml.Node, step: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    """The (key, value) of ``step`` in a mapping, or (None, item) in a sequence."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(step):
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        item: yaml.Node = node.value[step]
        return None, item
    return None


def load_documents(text: str) -> list[Document]:
    """All non-empty documents in ``text``; YamlError with the line of a syntax error."""
    loader = yaml.SafeLoader(text)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            documents.append(Document(loader.construct_document(node), node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlError(f"YAML syntax: {exc.problem or exc}", line) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML: {exc}", 1) from exc
    finally:
        loader.dispose()
    return [document for document in documents if document.data is not None]
