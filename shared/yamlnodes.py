"""Where in a YAML file a validation error points, and the error a broken file raises.

Owns ``YamlFileError`` and the one walk from a pydantic ``loc`` (keys and list indexes) to the YAML node it
names, so the SOP file (``shared.sop.definition``) and the region registry (``shared.registry``) report
``file:line: field`` the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml


class YamlFileError(ValueError):
    """A YAML file cannot be used; the message names the file, the line (1-based, if known) and the problem."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


def node_at(root: yaml.Node, loc: Sequence[int | str]) -> yaml.Node:
    """The deepest YAML node along a pydantic error location (stops where the path leaves the tree)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        else:
            child = None
        if child is None:
            break
        node = child
    return node
