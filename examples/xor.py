"""The XOR example of Tran et al. (2019), section 3.2: a flow captures what a factorized base cannot.

The data distribution over two bits,

              x2 = 0   x2 = 1
    x1 = 0     0.63     0.07
    x1 = 1     0.03     0.27

is not a product p(x1) p(x2), but it is the image of the product base [0.7, 0.3] x [0.9, 0.1]
under the flow f(x1, x2) = (x1, x1 xor x2), a ``DiscreteBipartiteFlow`` with K = 2 that keeps x1
and shifts x2 by mu = x1 (``mini_flows.experiments.xor.xor_model`` sets its MLP by hand). The
script prints the base's table and the flow model's table, computed by
``DiscreteFlowModel.log_prob`` (the inverse direction). ``mini-flows run xor`` also learns both
models from samples.

Run: python examples/xor.py
"""

from __future__ import annotations

from mini_flows.process import prepare

prepare()  # one BLAS thread (before NumPy loads) and malloc reuse: see mini_flows.process

import numpy as np  # noqa: E402

from mini_flows.experiments import xor  # noqa: E402
from mini_flows.experiments.xor import format_table, tables, xor_model  # noqa: E402

CONFIGS = np.array(xor.CONFIGS)


def main() -> None:
    base, flow = tables(*xor_model())
    print(format_table("Factorized base p(x1) p(x2), [0.7, 0.3] x [0.9, 0.1]:", base))
    print()
    print(format_table("With the flow f(x1, x2) = (x1, x1 xor x2), p(y) = p_base(f^-1(y)):", flow))
    print(f"\nmax |p - [[0.63, 0.07], [0.03, 0.27]]| = {np.abs(flow - xor.PAPER_TABLE).max():.1e}")


if __name__ == "__main__":
    main()
