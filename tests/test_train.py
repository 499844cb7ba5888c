"""The one training loop and the one progress printer: fit's contract (input untouched, history,
schedule, extras, batches from a function or an iterable, divergence named), Progress lines with
the model's and the whole run's time left, the run clock, linear decay and endless epochs."""

from __future__ import annotations

import numpy as np
import pytest

from mini_flows import backend as B
from mini_flows.discrete import build_model
from mini_flows.nn.tree import flatten
from mini_flows.optim import Adam, TrainingDiverged
from mini_flows.train import Progress, RunClock, Validation, epochs, fit, linear_decay


def quadratic(params, target):
    """(|w - target|^2, its gradient, the distance) for a params tree {"w": (2,)}."""
    d = params["w"] - target
    return float((d * d).sum()), {"w": 2 * d}, {"distance": float(np.sqrt((d * d).sum()))}


def test_fit_returns_a_trained_copy_and_a_history_with_extras():
    params = {"w": B.asarray([3.0, -4.0])}
    target = B.asarray([1.0, 1.0])
    trained, history = fit(quadratic, params, lambda step: target, 200, Adam(lr=0.1))
    assert np.array_equal(B.to_numpy(params["w"]), [3.0, -4.0])  # the input is untouched
    np.testing.assert_allclose(B.to_numpy(trained["w"]), [1.0, 1.0], atol=1e-2)
    assert set(history) == {"step", "loss", "grad_norm", "seconds", "distance"}
    assert history["step"] == list(range(200)) and all(len(v) == 200 for v in history.values())
    assert history["loss"][-1] < 1e-3 * history["loss"][0]
    np.testing.assert_allclose(history["distance"][0], 5.385164807134504)
    np.testing.assert_allclose(history["grad_norm"][0], 2 * 5.385164807134504)


def test_fit_keeps_the_parameters_of_the_best_validation_score():
    """Training pulls w towards 1 while the validation score prefers 0.5: the steps overshoot it,
    and fit returns the copy taken at the best score, with the scores and that step in the history."""
    params = {"w": B.asarray([3.0, 3.0])}
    scored = []

    def score(p):
        scored.append(B.to_numpy(p["w"]).copy())
        return float(((p["w"] - 0.5) ** 2).sum())

    trained, history = fit(quadratic, params, lambda step: B.asarray([1.0, 1.0]), 100, Adam(lr=0.1),
                           validate=Validation(score, every=7))
    assert history["valid_step"] == [0, *range(7, 100, 7), 100] and len(history["valid"]) == len(scored)
    best = int(np.argmin(history["valid"]))
    assert history["best_step"] == [history["valid_step"][best]] and 0 < best < len(scored) - 1
    assert np.array_equal(B.to_numpy(trained["w"]), scored[best])
    assert history["valid"][best] < history["valid"][-1]  # the last step's parameters were worse


def test_fit_never_returns_parameters_worse_than_its_start_on_validation():
    """A step size that only makes the score worse: fit gives back the start, bit for bit."""
    params = {"w": B.asarray([1.0, 1.0])}
    trained, history = fit(quadratic, params, lambda step: B.asarray([3.0, 3.0]), 10, Adam(lr=0.1),
                           validate=Validation(lambda p: float(((p["w"] - 1.0) ** 2).sum()), every=1))
    assert history["best_step"] == [0] and history["valid"][0] == 0.0
    assert np.array_equal(B.to_numpy(trained["w"]), [1.0, 1.0]) and trained["w"] is not params["w"]


def test_fit_refuses_a_validation_interval_below_one():
    with pytest.raises(ValueError, match="validate.every"):
        fit(quadratic, {"w": B.asarray([1.0])}, lambda step: B.asarray([1.0]), 1,
            validate=Validation(lambda p: 0.0, every=0))


def test_progress_says_which_step_fit_kept(capsys):
    params = {"w": B.asarray([1.0, 1.0])}
    fit(quadratic, params, lambda step: B.asarray([3.0, 3.0]), 10, Adam(lr=0.1), reporter=Progress("m", 10),
        validate=Validation(lambda p: float(((p["w"] - 1.0) ** 2).sum()), every=5))
    assert "m: kept step 0 of 10, validation 0.0000 (start 0.0000, last " in capsys.readouterr().out


def test_the_schedule_sets_the_learning_rate_of_every_step():
    seen = []

    class Recording(Adam):
        def step(self, params, grads):
            seen.append(self.lr)
            return super().step(params, grads)

    schedule = linear_decay(0.1, 5, final=0.5)
    fit(quadratic, {"w": B.asarray([0.0, 0.0])}, lambda step: B.asarray([1.0, 1.0]), 5, Recording(), schedule)
    np.testing.assert_allclose(seen, [0.1, 0.0875, 0.075, 0.0625, 0.05])
    assert linear_decay(0.2, 1)(0) == 0.2


def test_batches_come_from_a_function_of_the_step_or_an_iterable_read_once():
    steps_seen = []
    fit(lambda p, b: (0.0, {"w": 0 * p["w"]}), {"w": B.asarray([1.0])}, lambda step: steps_seen.append(step), 4)
    assert steps_seen == [0, 1, 2, 3]
    items = [B.asarray([1.0, 1.0])] * 3
    fit(quadratic, {"w": B.asarray([0.0, 0.0])}, items, 3)
    with pytest.raises(ValueError, match="the batches ran out after 3 of 4 steps"):
        fit(quadratic, {"w": B.asarray([0.0, 0.0])}, iter(items), 4)


def test_endless_epochs_cycle_and_refuse_an_empty_epoch():
    stream = epochs(lambda epoch: [(epoch, 0), (epoch, 1)])
    assert [next(stream) for _ in range(5)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    with pytest.raises(ValueError, match="epoch 0 yielded no batch"):
        next(epochs(lambda epoch: []))


def test_a_non_finite_loss_is_divergence_named_by_its_step():
    def blows_up(params, batch):
        return (float("nan") if batch == 2 else 1.0), {"w": 0 * params["w"]}

    with pytest.raises(TrainingDiverged, match=r"training diverged at step 3 \(loss 1 at step 2\).*now 0.001"):
        fit(blows_up, {"w": B.asarray([1.0])}, lambda step: step, 5)


def test_fit_trains_a_discrete_flow_model():
    model = build_model("bipartite", 3, 2, num_flows=0)
    start = model.init(B.host_rng(0))
    data = B.xp().zeros((64, 2), dtype="int64")  # one outcome: the loss can fall towards 0
    params, history = fit(model.loss_and_grads, start, lambda step: data, 50, Adam(lr=0.1), linear_decay(0.1, 50))
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert any(np.any(B.to_numpy(a) != B.to_numpy(b)) for a, b in zip(flatten(params).values(), flatten(start).values()))


def test_progress_prints_about_five_lines_and_the_last_step(capsys):
    progress = Progress("label", 12)
    for step in range(1, 13):
        progress.update(step, 1.5, {"kl": 0.25})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and "step    12/12" in lines[-1] and "loss   1.5000  kl  0.2500" in lines[-1]
    assert all("s elapsed" in line and "s left" in line and "run" not in line for line in lines)
    Progress("quiet", 3, verbose=False).update(3, 1.0)
    assert capsys.readouterr().out == ""


def test_progress_without_a_loss_shows_steps_and_time_left_only(capsys):
    progress = Progress("loading", 2, reports=1)
    progress.update(1)
    progress.update(2)
    line, = capsys.readouterr().out.splitlines()
    assert "loading" in line and "step     2/2  " in line and "s left" in line and "loss" not in line


def test_progress_on_a_run_clock_shows_the_whole_runs_time_left(capsys):
    clock = RunClock()
    assert clock.left() is None
    clock.plan(4)
    clock.plan(4)  # two models of 4 steps
    first, second = Progress("first", 4, clock=clock, reports=1), Progress("second", 4, verbose=False, clock=clock)
    for step in range(1, 5):
        first.update(step, 1.0)
    line = capsys.readouterr().out
    assert clock.done == 4 and clock.total == 8 and ", run " in line and "s left" in line.split("run")[-1]
    for step in range(1, 5):
        second.update(step, 1.0)
    assert clock.done == 8 and clock.left() == 0.0
    with pytest.raises(ValueError, match="steps must be"):
        clock.plan(-1)


def test_progress_warns_where_the_loss_rose(capsys):
    progress = Progress("runaway", 20)
    progress.close({"loss": [1.0] + [3.0] * 19}, 1e3)
    assert "runaway: warning: the loss rose from 1 (step 1)" in capsys.readouterr().out
    progress.close({"loss": [3.0, 2.0, 1.0]}, 1e3)
    Progress("annealed", 20, warn_rise=False).close({"loss": [1.0] + [3.0] * 19}, 1e3)
    assert capsys.readouterr().out == ""


def test_progress_shows_a_summary_of_the_extras_given_the_first_steps(capsys):
    def summary(extras, first):
        return {"ratio": f"{extras['g'] / first['g']:.2g}", "kl": extras["kl"]}

    progress = Progress("summed", 2, reports=2, summary=summary)
    progress.update(1, 1.0, {"g": 4.0, "kl": 0.5, "hidden": 9.0})
    progress.update(2, 1.0, {"g": 1.0, "kl": 0.25, "hidden": 9.0})
    lines = capsys.readouterr().out.splitlines()
    # the summary sees the extras' running means: g 0.9 * 4 + 0.1 * 1 = 3.7, kl 0.9 * 0.5 + 0.1 * 0.25
    assert "loss   1.0000  ratio 1  kl  0.5000  " in lines[0] and "loss   1.0000  ratio 0.93  kl  0.4750  " in lines[1]
    assert "hidden" not in lines[0] + lines[1]


def test_progress_averages_the_loss_and_every_extra_alike_and_names_the_unit(capsys):
    progress = Progress("averaged", 3, reports=3, unit="nats/seq")
    for step, (loss, kl) in enumerate([(2.0, 1.0), (1.0, 0.0), (4.0, float("nan"))], start=1):
        progress.update(step, loss, {"kl": kl})
    lines = capsys.readouterr().out.splitlines()
    assert "loss   2.0000 nats/seq  kl  1.0000  " in lines[0]
    assert "loss   1.9000 nats/seq  kl  0.9000  " in lines[1]  # the same running mean: 0.9 * 2 + 0.1 * 1, 0.9 * 1 + 0
    assert "loss   2.1100 nats/seq  kl     nan  " in lines[2]  # a non-finite extra shows as it is
    progress.update(3, 1.0, {"kl": 0.5})
    assert "kl  0.5000  " in capsys.readouterr().out  # and restarts its mean
    Progress("unitless", 1).update(1, 1.5)
    assert "loss   1.5000  " in capsys.readouterr().out


def test_fit_hands_the_history_to_the_checks_at_the_end(capsys):
    seen = []

    def check(history):
        seen.append({key: list(values) for key, values in history.items() if key in ("loss", "distance")})
        return [f"warning: distance ended at {history['distance'][-1]:.2f}"]

    fit(quadratic, {"w": B.asarray([3.0, -4.0])}, lambda step: B.asarray([0.0, 0.0]), 3, Adam(lr=0.1),
        reporter=Progress("checked", 3, checks=[check]))
    assert len(seen) == 1 and len(seen[0]["loss"]) == len(seen[0]["distance"]) == 3
    assert capsys.readouterr().out.splitlines()[-1].startswith("  checked: warning: distance ended at 4.")
    Progress("quiet", 3, verbose=False, checks=[check]).close({"loss": [1.0]}, 1e3)
    assert capsys.readouterr().out == "" and len(seen) == 1


def test_the_run_clock_reckons_at_the_pace_of_its_last_steps(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("mini_flows.train.time.perf_counter", lambda: now[0])
    clock = RunClock()
    clock.plan(100)
    clock.plan(100)  # a fast model of 100 steps, then a slow one of 100
    for _ in range(100):
        now[0] += 0.01
        clock.tick()
    assert clock.left() == pytest.approx(100 * 0.01)
    for _ in range(RunClock.PACE_WINDOW):
        now[0] += 1.0
        clock.tick()
    assert clock.left() == pytest.approx((100 - RunClock.PACE_WINDOW) * 1.0)  # not the mean pace, 0.2 s a step
