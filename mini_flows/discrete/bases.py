"""Base distributions of discrete flows (Tran et al. 2019, section 4): categorical over one-hot sequences.

    FactorizedCategorical:        p(x) = prod_d Cat(x_d | softmax(theta_d))
    AutoregressiveCategorical:    p(x) = prod_d Cat(x_d | softmax(net(x_<d)_d))

Both follow the block protocol on one-hot inputs x : (batch, D, K)::

    params = base.init(rng, dtype)
    log_p, cache = base.log_prob(params, x)          # log_p : (batch,), nats
    grads, dx = base.backward(params, cache, dlog_p)  # dx : (batch, D, K), so a flow's gradient goes on
    x = base.sample(params, n, seed)                 # one-hot (n, D, K), noise from B.rng(seed)
"""

from __future__ import annotations

from typing import Any

from mini_flows import backend as B
from mini_flows.backend import Array
from mini_flows.checks import check_positive_int
from mini_flows.discrete.one_hot import check_one_hot, check_vocab_size, sample_categorical
from mini_flows.nn import init
from mini_flows.nn.losses import log_softmax
from mini_flows.nn.tree import Tree


def _categorical_log_prob(logits: Array, x: Array) -> tuple[Array, Array]:
    """log p = sum_d sum_k x[b, d, k] log_softmax(logits)[b, d, k]  -> ((batch,), log_softmax)."""
    logp = log_softmax(logits)
    return (x * logp).sum(axis=(1, 2)), logp


def _categorical_log_prob_backward(logp: Array, x: Array, dlog_p: Array) -> tuple[Array, Array]:
    """(dlogits, dx), each (batch, D, K), of sum_b dlog_p[b] log p(x_b):
    dlogits = dlog_p (x - softmax(logits) sum_k x),  dx = dlog_p log_softmax(logits)."""
    dx = dlog_p[:, None, None] * logp
    dlogits = dlog_p[:, None, None] * (x - B.xp().exp(logp) * x.sum(axis=-1, keepdims=True))
    return dlogits, dx


class FactorizedCategorical:
    """p(x) = prod_d Cat(x_d | softmax(theta_d)), independent positions.

    Parameters: "logits" theta : (D, K), drawn N(0, 1) so a random base is not uniform.
    """

    def __init__(self, length: int, vocab_size: int):
        check_positive_int("length", length)
        check_vocab_size(vocab_size)
        self.length, self.vocab_size = length, vocab_size

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"logits": init.normal(rng, (self.length, self.vocab_size), 1.0, dtype)}

    def log_prob(self, params: Tree, x: Array) -> tuple[Array, Any]:
        """x : (batch, D, K) one-hot -> log p(x) : (batch,)."""
        check_one_hot("x", x, self.length, self.vocab_size, like=params["logits"])
        log_p, logp = _categorical_log_prob(params["logits"], x)
        return log_p, (logp, x)

    def backward(self, params: Tree, cache: Any, dlog_p: Array) -> tuple[Tree, Array]:
        logp, x = cache
        dlogits, dx = _categorical_log_prob_backward(logp, x, dlog_p)
        return {"logits": dlogits.sum(axis=0)}, dx

    def sample(self, params: Tree, n: int, seed: int | None = None) -> Array:
        """n one-hot sequences (n, D, K), all positions at once by inverse-CDF sampling."""
        check_positive_int("n", n)
        probs = B.xp().exp(log_softmax(B.value(params["logits"])))
        u = B.rng(seed).random((n, self.length))
        return sample_categorical(B.xp().broadcast_to(probs, (n, self.length, self.vocab_size)), u)


class AutoregressiveCategorical:
    """p(x) = prod_d Cat(x_d | softmax(logits_d)), logits = network(x) with logits_d a function of x_<d.

    The network is an autoregressive one from ``networks`` with scale=False (``LSTMNet`` or
    ``TransformerNet(causal=True)``, which read x shifted right by one position, or ``MADENet``).
    Parameters: {"network": the network's tree}.
    """

    def __init__(self, network: Any):
        if not network.autoregressive or network.scale:
            raise ValueError("an autoregressive base needs an autoregressive network with scale=False")
        self.network = network
        self.length, self.vocab_size = network.length, network.vocab_size

    def init(self, rng: Any, dtype: Any = "float64") -> Tree:
        return {"network": self.network.init(rng, dtype)}

    def log_prob(self, params: Tree, x: Array) -> tuple[Array, Any]:
        """x : (batch, D, K) one-hot -> log p(x) : (batch,), one parallel network call."""
        check_one_hot("x", x, self.length, self.vocab_size, like=params["network"]["bias"])
        (logits, _), net_cache = self.network.forward(params["network"], x)
        log_p, logp = _categorical_log_prob(logits, x)
        return log_p, (logp, x, net_cache)

    def backward(self, params: Tree, cache: Any, dlog_p: Array) -> tuple[Tree, Array]:
        logp, x, net_cache = cache
        dlogits, dx = _categorical_log_prob_backward(logp, x, dlog_p)
        grads, dx_net = self.network.backward(params["network"], net_cache, dlogits)
        return {"network": grads}, dx + dx_net

    def sample(self, params: Tree, n: int, seed: int | None = None) -> Array:
        """n one-hot sequences (n, D, K), position by position (D network calls)."""
        check_positive_int("n", n)
        xp = B.xp()
        D, K = self.length, self.vocab_size
        u = B.rng(seed).random((n, D))
        cols: list[Array] = []
        for d in range(D):
            rest = xp.zeros((n, D - d, K), dtype=B.value(params["network"]["bias"]).dtype)
            partial = xp.concatenate([xp.stack(cols, axis=1), rest], axis=1) if cols else rest
            (logits, _), _ = self.network.forward(params["network"], partial)
            cols.append(sample_categorical(xp.exp(log_softmax(logits[:, d])), u[:, d]))
        return xp.stack(cols, axis=1)
