"""Parameter trees: nested dicts of arrays with stable string keys.

A block's parameters are a dict of arrays; a model nests its blocks' dicts under their names.
Gradients mirror the parameter tree. ``flatten`` gives the "a/b/c" names used by optimisers and
``.npz`` checkpoints.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

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
    """Inverse of ``flatten``."""
    tree: Tree = {}
    for name, val in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = val
    return tree


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
    """The first array of a tree (unboxed from autograd), e.g. to read the parameters' dtype;
    ValueError for an empty tree or subtree on the way."""
    leaf = B.value(tree)
    while isinstance(leaf, dict):
        if not leaf:
            raise ValueError("the parameter tree is empty where its first array should be; pass the tree init returns")
        leaf = B.value(next(iter(leaf.values())))
    return leaf


def check_tree(name: str, tree: Any, keys: Sequence[str] = ()) -> None:
    """Raise ValueError unless ``tree`` is a parameter tree holding each of ``keys`` at its top
    (a model's parts: "base", "flow_0", ...): nested dicts, none empty, whose leaves are arrays.
    The message names the first missing key, empty subtree or leaf that is not an array."""
    tree = B.value(tree)  # autograd traces a tree as a box
    if not isinstance(tree, dict):
        raise ValueError(f"{name} must be a parameter tree (a dict, as init returns), got {type(tree).__name__}")
    for key in keys:
        if key not in tree:
            raise ValueError(f"{name} has no {key!r} (it has {sorted(tree)}); pass the tree this model's init returns")
    for key, value in tree.items():
        where, value = f"{name}[{key!r}]", B.value(value)
        if isinstance(value, dict):
            if not value:
                raise ValueError(f"{where} is an empty tree; pass the tree this model's init returns")
            check_tree(where, value)
        elif not hasattr(value, "shape"):
            raise ValueError(f"{where} must be an array, got {type(value).__name__}")
