"""YAML for configs: safe types only, duplicate keys refused, alias expansion bounded.

Why: `yaml.safe_load` builds no Python objects, but it still (a) keeps the last of two equal keys
silently, so a config that sets `budgets` twice runs the one the reader did not look at, and (b)
lets a few hundred bytes of nested aliases (a "billion laughs" bomb) expand into a structure that
hangs whatever walks it (validation, hashing, json.dumps). Here the document is composed into its
node graph first (linear in the text), checked (duplicate keys, recursive aliases, expanded size at
most MAX_NODES), and only then constructed with the SafeLoader.

    from rebase.yaml_load import load_yaml
    raw = load_yaml(Path("configs/demo.yaml").read_text(), "configs/demo.yaml")
"""

from __future__ import annotations

from typing import Any

import yaml

from rebase.errors import BadInput

MAX_NODES = 100_000  # expanded scalars + collections; a real config has a few hundred


def _line(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}" if node.start_mark else "?"


def _check_keys(node: yaml.MappingNode, source: str) -> None:
    seen: dict[tuple, yaml.Node] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (key.tag, key.value)
        if ident in seen:
            raise BadInput(f"{source}: {_line(key)}: duplicate key '{key.value}' (first at {_line(seen[ident])})")
        seen[ident] = key


def check_nodes(root: yaml.Node, source: str, max_nodes: int = MAX_NODES) -> int:
    """Expanded size of the node graph (aliases counted at every use); BadInput on a duplicate key,
    a recursive alias or more than `max_nodes` nodes."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            active.discard(nid)
            kids = _children(node)
            total = 1 + sum(size[id(k)] for k in kids)
            if total > max_nodes:
                raise BadInput(
                    f"{source}: {_line(node)}: the document expands to more than {max_nodes} nodes (nested aliases?)"
                )
            size[nid] = total
            continue
        if nid in size:
            continue
        if nid in active:
            raise BadInput(f"{source}: {_line(node)}: a recursive alias (a node that contains itself)")
        active.add(nid)
        if isinstance(node, yaml.MappingNode):
            _check_keys(node, source)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    return []


def load_yaml(text: str, source: str) -> Any:
    """Parse `text` (see the module docstring); yaml.YAMLError for malformed YAML, BadInput for
    the checks above."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_nodes(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()
