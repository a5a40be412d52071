"""YAML as the project reads its declarations: the safe loader (libyaml's when present), refusing
a key given twice in one mapping. Plain YAML keeps the last of two equal keys, so a second
`display:` or `endpoints:` would silently drop the first."""

from __future__ import annotations

import yaml


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader (libyaml's when present), refusing a key given twice (YAML keeps the last)."""


def _unique_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark
            )
        seen.add(key)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load(text: str):
    """The document in `text`; a repeated key raises yaml.constructor.ConstructorError at its line."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
