"""Parameter trees: a tree of the wrong shape is named where it enters, never a StopIteration or
a KeyError from inside a block."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.continuous.layers import AF
from mini_flows.continuous.scalar import AffineTransform
from mini_flows.nn.tree import check_tree, first_leaf, shape_tree


def test_first_leaf_of_an_empty_tree_is_a_clear_error():
    """Issue 24, item 10: first_leaf({}) raised StopIteration out of a flow's input check."""
    assert first_leaf({"a": {"b": B.asarray(np.ones(2))}}).shape == (2,)
    for tree in ({}, {"a": {}}):
        with pytest.raises(ValueError, match="the parameter tree is empty where its first array should be"):
            first_leaf(tree)
    with pytest.raises(ValueError, match="the parameter tree is empty"):
        AF(2, AffineTransform(), hidden_sizes=(4,)).forward({}, B.asarray(np.zeros((3, 2))))


def test_check_tree_names_the_first_problem():
    leaf = B.asarray(np.ones(2))
    shapes = {"base": {"w": (2,)}, "flow_0": {"net": {"b": (2,)}}}
    check_tree("params", {"base": {"w": leaf}, "flow_0": {"net": {"b": leaf}}}, shapes)
    with pytest.raises(ValueError, match=r"params has no 'flow_0' \(it has \['base'\]"):
        check_tree("params", {"base": {"w": leaf}}, shapes)
    with pytest.raises(ValueError, match=r"params/flow_0/net has no 'b'"):
        check_tree("params", {"base": {"w": leaf}, "flow_0": {"net": {}}}, shapes)
    with pytest.raises(ValueError, match=r"params/base/w must be an array, got list"):
        check_tree("params", {"base": {"w": [1.0]}, "flow_0": {"net": {"b": leaf}}}, shapes)
    with pytest.raises(ValueError, match=r"params/flow_0/net/b has shape \(3,\), the model's is \(2,\)"):
        check_tree("params", {"base": {"w": leaf}, "flow_0": {"net": {"b": B.asarray(np.ones(3))}}}, shapes)
    with pytest.raises(ValueError, match="params must be a parameter tree .*got NoneType"):
        check_tree("params", None, shapes)


def test_shape_tree_mirrors_the_tree():
    assert shape_tree({"a": {"b": B.asarray(np.ones((2, 3)))}}) == {"a": {"b": (2, 3)}}
