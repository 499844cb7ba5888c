"""Model code calls only array routines CuPy has.

Every ``xp.NAME`` and ``B.xp().NAME`` in mini_flows (and ``xp.linalg.NAME``, ``xp.random.NAME``,
``xp.UFUNC.METHOD``) must be in CuPy's documented API, listed in tests/cupy_api.py with the CuPy
version it was taken from. The strict backend (``--backend strict``) catches the same mistake only
on the lines the tests execute; this scan covers every line.
"""

from __future__ import annotations

import pathlib
import re

from mini_flows import backend as B
from tests import cupy_api

PACKAGE = pathlib.Path(B.__file__).parent
_USE = re.compile(r"\b(?:xp|B\.xp\(\))((?:\.[A-Za-z_]\w*)+)")


def array_module_uses(source: str) -> list[tuple[int, str]]:
    """(line number, dotted name) of each use of the array module in ``source``: "exp",
    "linalg.slogdet", "add.at"."""
    return [(source.count("\n", 0, m.start()) + 1, m.group(1)[1:]) for m in _USE.finditer(source)]


def cupy_lacks(use: str) -> bool:
    """Whether CuPy (tests/cupy_api.py) lacks the dotted name ``use`` of the array module."""
    head, *rest = use.split(".")
    if head in cupy_api.NAMESPACES and head:
        return not rest or rest[0] not in cupy_api.NAMESPACES[head]
    if head not in cupy_api.NAMESPACES[""]:
        return True
    method = rest[0] if rest else None
    return method in cupy_api.UFUNC_METHODS and head not in cupy_api.UFUNC_METHODS[method]


def test_model_code_calls_only_what_cupy_has():
    missing = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: xp.{use}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, use in array_module_uses(path.read_text())
        if cupy_lacks(use)
    ]
    assert missing == [], f"not in CuPy {cupy_api.CUPY_VERSION}'s API (tests/cupy_api.py): {missing}"


def test_the_scan_finds_uses_and_would_flag_what_cupy_lacks():
    uses = {use for path in PACKAGE.rglob("*.py") for _, use in array_module_uses(path.read_text())}
    assert {"concatenate", "where", "exp", "finfo"} <= uses
    assert array_module_uses("y = B.xp().tanh(x)\nxp.linalg.slogdet(a); xp.add.at(g, i, v)") == [
        (1, "tanh"), (2, "linalg.slogdet"), (2, "add.at")]
    for present in ("tanh", "float64", "abs", "linalg.slogdet", "random.default_rng", "add.at", "multiply.outer"):
        assert not cupy_lacks(present), present
    for absent in ("put_along_axis", "linalg.matrix_exp", "maximum.reduce", "logaddexp.reduce", "fft2", "linalg"):
        assert cupy_lacks(absent), absent
