"""The one error the continuous flows raise for a value that leaves its range, with its position.

A scalar transform refuses a non-finite input, a result that overflows its dtype, and (NLSq's
inverse) parameters outside the range where the inverse is accurate. The flows keep the batch as
the leading axis all the way down, so ``index[0]`` of an error raised deep inside a prior names
the offending sequence, and ``SequencePrior`` re-raises it saying which one. It is a
``NonFiniteError``, so a training step's divergence guard reports it as divergence.
"""

from __future__ import annotations

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import NonFiniteError


class FlowRangeError(NonFiniteError):
    """A value outside the range where a flow is finite or accurate.

    ``index`` is the first offending position in the broadcast shape of the call that raised
    (``()`` for 0-d inputs).
    """

    def __init__(self, message: str, index: tuple[int, ...]):
        super().__init__(message)
        self.index = index


def raise_where(bad: Array, message: str, values: dict[str, Array]) -> None:
    """Raise FlowRangeError if any entry of the boolean array ``bad`` (...) is true.

    The message is ``message`` followed by the first offending index, in the broadcast shape of
    ``bad`` and the arrays in ``values``, and the entries of ``values`` there.
    """
    xp = B.xp()
    if not bool(xp.any(B.value(bad))):
        return
    bad, *shown = xp.broadcast_arrays(B.value(bad), *(B.value(v) for v in values.values()))
    index = tuple(int(i) for i in xp.unravel_index(int(xp.argmax(bad.reshape(-1))), bad.shape))
    text = ", ".join(f"{name} = {float(v[index]):.17g}" for name, v in zip(values, shown))
    raise FlowRangeError(f"{message} at index {index} ({text})", index)
