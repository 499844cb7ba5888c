"""Latent flow models and the LSTM baseline on a synthetic hidden-Markov character source, against
the source's exact likelihood: a toy-scale Table 1 of Ziegler and Rush (2019).

    python examples/latent_hmm.py [--steps 1000] [--seed 0] [--quick] [--backend numpy|cupy]

The source (``mini_flows.data.hmm``) is a small HMM whose probability of every sequence is exact
by the forward algorithm, so its NLL on the test set is the floor every model is compared with.
All models see the same training batches for the same number of Adam steps (clip 0.25, as in
supplement D) and have the same sizes: one embedding, LSTMs of one width and depth. The latent
models train on the ELBO with S samples and KL annealing (weight ~0 for the first tenth of the
steps, then linear to 1 over the next three tenths) and are evaluated by importance sampling
with q as proposal. The table reports, in bits per character on the test set:

    NLL        -[log p(x | T) + log p(T)]; importance-sampled for the latent models
    NLL | T    -log p(x | T): the same without the length prior (the learnt p(T) is
               add-one smoothed over 1..max_length, so it pays a little more than the source's)
    reconst.   -E_q log p(x | z), and KL = E_q [log q(z | x) - log p(z | T)], the ELBO's two parts
    train (s)  wall time of the training steps

The paper's ordering is AF / AF <= AF / SCF <= IAF / SCF, the LSTM best, and the ablations worse.
"AF only" is Table 1's AF-only row (no dependence across time: each z_t depends on its length
encoding alone); "AF / none" is Table 2's "- AF hidden" (AF in time, an independent transform per
hidden unit).
At this toy size the source is easy and the differences between the models are small.

The script asks OpenBLAS for one thread unless OPENBLAS_NUM_THREADS is set: on a small CPU its
threads turn these small matmuls several times slower (a default run takes 4 to 5 minutes on
2 cores with one thread, over 20 with the default threads).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads OpenBLAS

import argparse
import math
import time
from typing import Any

import numpy as np

from mini_flows import backend as B
from mini_flows.data.hmm import make_hmm
from mini_flows.data.text import batches
from mini_flows.latent.baseline import LSTMBaseline
from mini_flows.latent.model import LatentFlowModel
from mini_flows.latent.train import evaluate, train
from mini_flows.optim import Adam

VOCAB, STATES, MIN_LENGTH, MAX_LENGTH = 8, 4, 4, 12
EMBED, HIDDEN, LAYERS, LATENT, FLOW_HIDDEN = 16, 32, 1, 4, 32
BATCH, LR, CLIP = 32, 3e-3, 0.25
MODELS = (("LSTM baseline", None), ("AF / AF", "af/af"), ("AF / SCF", "af/scf"), ("IAF / SCF", "iaf/scf"),
          ("AF only", "none/af"), ("AF / none", "af/none"))


def _report(name: str, step: int, steps: int, loss: float, elapsed: float) -> None:
    print(f"  {name:<14} step {step:>5}/{steps}  loss {loss:.3f} nats/char  {elapsed:5.0f}s elapsed, "
          f"{elapsed / step * (steps - step):4.0f}s left", flush=True)


def run_baseline(train_set: list, test_set: list, steps: int, seed: int, log_every: int) -> dict[str, Any]:
    """Train the LSTM baseline with Adam on the per-character NLL; exact test NLL (no sampling)."""
    model = LSTMBaseline(VOCAB, MAX_LENGTH, embed_size=EMBED, hidden_size=HIDDEN, num_layers=LAYERS)
    model.fit_lengths(np.asarray([len(s) for s in train_set]))
    params, optimizer = model.init(B.host_rng(seed)), Adam(lr=LR, clip_norm=CLIP)
    start, step, epoch = time.perf_counter(), 0, 0
    while step < steps:
        for x, lengths in batches(train_set, BATCH, seed + epoch):
            loss, grads = model.loss_and_grads(params, B.asarray(x), B.asarray(lengths))
            optimizer.step(params, grads)
            step += 1
            if step % log_every == 0 or step == steps:
                _report("LSTM baseline", step, steps, loss, time.perf_counter() - start)
            if step == steps:
                break
        epoch += 1
    seconds = time.perf_counter() - start
    total = given_length = 0.0
    for x, lengths in batches(test_set, 100, None):
        x, lengths = B.asarray(x), B.asarray(lengths)
        given_length += float(model.forward(params, x, lengths)[0].sum())
        total += float(model.log_prob(params, x, lengths).sum())
    bits = -math.log(2) * sum(len(s) for s in test_set)
    return {"nll": total / bits, "nll_given_length": given_length / bits, "seconds": seconds}


def run_flow(name: str, prior: str, train_set: list, test_set: list, steps: int, seed: int, samples: tuple[int, int],
             log_every: int) -> dict[str, Any]:
    """Train a latent flow model on the annealed ELBO; importance-sampled test NLL and ELBO parts."""
    model = LatentFlowModel(VOCAB, MAX_LENGTH, prior=prior, latent_dim=LATENT, embed_size=EMBED, hidden_size=HIDDEN,
                            num_layers=LAYERS, flow_hidden_sizes=(FLOW_HIDDEN,))
    model.fit_lengths(np.asarray([len(s) for s in train_set]))

    def progress(info: dict[str, Any]) -> None:
        _report(name, info["step"], steps, info["loss"], info["elapsed"])

    try:
        params, history = train(model, model.init(B.host_rng(seed)),
                                lambda epoch: batches(train_set, BATCH, seed + epoch), steps, seed, lr=LR, clip=CLIP,
                                samples=samples[0], kl_schedule=(steps // 10, max(1, 3 * steps // 10)),
                                progress=progress, log_every=log_every)
    except ValueError as err:  # Adam refuses non-finite or overflowing gradients: the run diverged
        print(f"  {name:<14} diverged: {err}", flush=True)
        return {"diverged": True}
    result = evaluate(model, params, list(batches(test_set, 100, None)), samples=samples[1], seed=seed + 1)
    return {**result, "seconds": history["seconds"][-1]}


def source_row(source: Any, test_set: list) -> dict[str, float]:
    """The source's exact NLL on the test set, with and without its length distribution."""
    log_p = source.log_probs(test_set)
    log_length = np.log(source.length_probs[[len(s) for s in test_set]])
    bits = -math.log(2) * sum(len(s) for s in test_set)
    return {"nll": float(log_p.sum()) / bits, "nll_given_length": float((log_p - log_length).sum()) / bits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="Adam steps per model")
    parser.add_argument("--seed", type=int, default=0, help="seeds the source, the data, the models and the noise")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few steps, small test set, few samples")
    parser.add_argument("--backend", default="numpy", choices=B.BACKENDS)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    B.set_backend(args.backend)
    steps = min(args.steps, 40) if args.quick else args.steps
    n_train, n_test = (300, 50) if args.quick else (3000, 300)
    samples = (2, 5) if args.quick else (5, 50)  # ELBO samples in training, importance samples at test

    source = make_hmm(args.seed, n_states=STATES, vocab_size=VOCAB, min_length=MIN_LENGTH, max_length=MAX_LENGTH,
                      emissions_per_state=3, concentration=0.3)
    train_set, test_set = source.sample(n_train, args.seed + 1), source.sample(n_test, args.seed + 2)
    print(f"HMM source: {STATES} states, {VOCAB} characters, T uniform on [{MIN_LENGTH}, {MAX_LENGTH}]; "
          f"{n_train} training and {n_test} test sequences; e.g. {source.decode(test_set[0])!r}")
    print(f"models: embedding {EMBED}, LSTMs {LAYERS} x {HIDDEN}, latent {LATENT}, flow MADE/MLP {FLOW_HIDDEN}; "
          f"{steps} steps of batch {BATCH}, ELBO samples {samples[0]}, importance samples {samples[1]}\n")
    log_every = max(1, steps // 4)
    results = {}
    for name, prior in MODELS:
        if prior is None:
            results[name] = run_baseline(train_set, test_set, steps, args.seed, log_every)
        else:
            results[name] = run_flow(name, prior, train_set, test_set, steps, args.seed, samples, log_every)

    print(f"\nTest set, bits per character ({steps} steps per model, seed {args.seed})")
    print(f"{'model':<20}{'NLL':>8}{'NLL | T':>9}{'reconst.':>10}{'KL':>8}{'train (s)':>11}")
    for name, r in {**results, "HMM source (exact)": source_row(source, test_set)}.items():
        if r.get("diverged"):
            print(f"{name:<20}{'diverged: non-finite gradients, no result':>46}")
            continue
        parts = "".join(f"{r[k]:>{w}.3f}" if k in r else f"{'-':>{w}}" for k, w in (("rec", 10), ("kl", 8)))
        seconds = f"{r['seconds']:>11.0f}" if "seconds" in r else f"{'-':>11}"
        print(f"{name:<20}{r['nll']:>8.3f}{r['nll_given_length']:>9.3f}{parts}{seconds}")


if __name__ == "__main__":
    main()
