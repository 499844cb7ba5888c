"""Parameter trees: nested dicts of arrays with stable string keys.

A block's parameters are a dict of arrays; a model nests its blocks' dicts under their names.
Gradients mirror the parameter tree. ``flatten`` gives the "a/b/c" names used by optimisers and
``.npz`` checkpoints.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from mini_flows import backend as B
from mini_flows.backend import Array

Tree = Dict[str, Any]


def flatten(tree: Tree, prefix: str = "") -> dict[str, Array]:
    """Nested dict -> flat dict with "/"-joined keys, in insertion order."""
    flat: dict[str, Array] = {}
    for key, val in tree.items():
        if "/" in key:
            raise ValueError(f"parameter name {key!r} must not contain '/'")
        name = f"{prefix}{key}"
        if isinstance(val, dict):
            flat.update(flatten(val, name + "/"))
        else:
            flat[name] = val
    return flat


def unflatten(flat: dict[str, Array]) -> Tree:
    """Inverse of ``flatten``. ValueError where a name is both an array and a group holding
    others ("a" and "a/b"), which no tree flattens to."""
    tree: Tree = {}
    for name, val in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for depth, part in enumerate(parents, 1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _clash("/".join(parents[:depth]), name)
        if leaf in node:
            raise _clash(name, f"{name}/{next(iter(flatten(node[leaf])))}")
        node[leaf] = val
    return tree


def _clash(array: str, member: str) -> ValueError:
    return ValueError(f"parameter names clash: {array!r} is an array and the group holding {member!r}")


def tree_map(fn: Callable[..., Array], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` leaf by leaf to trees of the same structure."""
    return {
        key: tree_map(fn, val, *(r[key] for r in rest)) if isinstance(val, dict) else fn(val, *(r[key] for r in rest))
        for key, val in tree.items()
    }


def tree_add(a: Tree, b: Tree) -> Tree:
    """Leafwise sum of two gradient trees of the same structure."""
    return tree_map(lambda x, y: x + y, a, b)


def first_leaf(tree: Tree) -> Array:
    """The first array of a tree (unboxed from autograd), e.g. to read the parameters' dtype."""
    leaf = B.value(tree)
    while isinstance(leaf, dict):
        leaf = B.value(next(iter(leaf.values())))
    return leaf
