"""The one table of what training logs: every metric a shipped loss logs, found by running it, is in its range,
and a count (whole values >= 0) has a count's range; the loss rule follows the loss the file names."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from savi_plugin.data.metric_ranges import NONNEGATIVE_LOSSES, logged_range
from savi_plugin.training.scoring import Objective
from tests.builders import phrase_batch
from tests.losses.test_interface import make_logits, scores_of


def test_the_shipped_losses_are_those_whose_range_is_known():
    """Every loss savi registers (setup.cfg) is in :data:`NONNEGATIVE_LOSSES`, so a new one is a decision."""
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    shipped = {line.split("=")[0].strip() for line in setup["options.entry_points"]["savi_plugin.losses"].split("\n")
               if line.strip()}
    assert shipped == NONNEGATIVE_LOSSES


@pytest.mark.parametrize("loss_type", sorted(NONNEGATIVE_LOSSES))
def test_every_metric_a_shipped_loss_logs_is_in_its_range(loss_type):
    """The metric names come from the losses themselves (what the trainer logs, prefixed ``eval_`` in
    evaluation), not from a list: a metric whose values are whole and >= 0 is a count and must have a range that
    refuses a negative one (pass 12, B30: ``rrpo/chosen_phrase_tokens -4.5`` was drawn)."""
    objective = Objective(loss_type)
    options = objective.scoring_options("adapter")
    policy, reference, targets, phrase = make_logits(seed=3)
    scores = scores_of(policy, None if options["reference"] == "none" else reference, targets, kl=options["kl"],
                       kl_sides=options["kl_sides"])
    _, losses, metrics = objective(scores, phrase_batch(phrase[:3], phrase[3:]))
    metrics = {"loss": losses.detach(), **metrics}
    counts = []
    for name, values in metrics.items():
        values = values.tolist()
        for logged in (name, f"eval_{name}"):
            rule = logged_range(logged, loss_type)
            if all(v >= 0 and float(v).is_integer() for v in values) and name != "rewards/accuracies":
                counts.append(logged)
                assert rule is not None and rule.low >= 0, f"{logged}: a count without a count's range"
                assert rule.problem(-1) and rule.problem(-4.5), logged
            if rule is not None:
                assert all(rule.problem(v) is None for v in values), (logged, values)
    if loss_type in ("rrpo", "ddpo", "dpa"):
        assert counts, f"{loss_type} logs its tagged tokens or phrases"
    assert logged_range("loss", loss_type).problem(-7.0) and logged_range("train_loss", loss_type).problem(-7.0)


def test_the_trainers_counts_norm_and_the_loss_rule():
    """What the trainer itself logs: a step count whole, a norm >= 0; a loss is >= 0 where the file names a
    shipped loss and any float32 number where it names another loss or none (a diagnostics row)."""
    assert "whole number of steps" in logged_range("nonfinite_steps").problem(2.5)
    assert logged_range("nonfinite_steps").problem(3) is None
    assert "a norm is never negative" in logged_range("grad_norm").problem(-3.0)
    assert logged_range("truncated").problem(-1.0) and logged_range("truncated").problem(2.0) is None
    assert logged_range("eval_runtime") is None and logged_range("train_steps_per_second") is None
    assert logged_range("loss", "rrpo").problem(-0.5) and logged_range("loss", "rrpo").problem(-3e-7) is None
    assert logged_range("loss", "a_plugin_loss").problem(-7.0) is None and logged_range("loss").problem(-7.0) is None
