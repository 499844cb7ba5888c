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
    """The first array of a tree (unboxed from autograd), e.g. to read the parameters' dtype;
    ValueError for an empty tree or subtree on the way."""
    leaf = B.value(tree)
    while isinstance(leaf, dict):
        if not leaf:
            raise ValueError("the parameter tree is empty where its first array should be; pass the tree init returns")
        leaf = B.value(next(iter(leaf.values())))
    return leaf


def check_tree(name: str, tree: Any, shapes: Tree) -> None:
    """Raise ValueError unless ``tree`` has exactly the keys of ``shapes`` (a tree of shape tuples,
    ``shape_tree`` of a model's ``init``) at every level, and at each leaf an array of that shape.
    The message names the first key missing or unexpected, or the first leaf that is no array or
    has another shape, in ``flatten``'s "a/b/c" form."""
    tree = B.value(tree)  # autograd traces a tree as a box
    if not isinstance(tree, dict):
        raise ValueError(f"{name} must be a parameter tree (a dict, as init returns), got {type(tree).__name__}")
    missing, unexpected = [k for k in shapes if k not in tree], [k for k in tree if k not in shapes]
    if missing or unexpected:
        what = f"has no {missing[0]!r}" if missing else f"has an unexpected {unexpected[0]!r}"
        raise ValueError(f"{name} {what} (it has {sorted(tree)}, the model's {sorted(shapes)}); pass the tree this "
                         "model's init returns")
    for key, want in shapes.items():
        where, value = f"{name}/{key}", B.value(tree[key])
        if isinstance(want, dict):
            check_tree(where, value, want)
        elif not hasattr(value, "shape"):
            raise ValueError(f"{where} must be an array, got {type(value).__name__}")
        elif tuple(value.shape) != want:
            raise ValueError(f"{where} has shape {tuple(value.shape)}, the model's is {want}: these are the "
                             "parameters of another model")


def shape_tree(tree: Tree) -> Tree:
    """The tree of ``tree``'s leaf shapes (tuples), for ``check_tree``."""
    return tree_map(lambda a: tuple(a.shape), tree)


class ChecksParams:
    """For a model whose ``init(rng, dtype)`` draws its parameters: ``check_params(params)``, the
    check its public entries make before any product, so that the parameters of another model are
    named (``check_tree``) instead of failing in a matrix product. The shapes are drawn once, on the
    first check, from an ``init`` in float32."""

    _param_shapes: Tree | None = None

    def check_params(self, params: Tree) -> None:
        """ValueError naming the first key missing or unexpected, or leaf of another shape."""
        if self._param_shapes is None:
            self._param_shapes = shape_tree(self.init(B.host_rng(0), "float32"))  # type: ignore[attr-defined]
        check_tree("params", params, self._param_shapes)
