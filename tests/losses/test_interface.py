"""The loss contract: declared requirements and checked hyper-parameters, SimPO, TDPO, RRPO's ablation options,
per-pair weights, and a loss registered from outside the package without a trainer edit."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
import torch

from savi_plugin.config.values import ConfigError
from savi_plugin.losses import weighted_mean
from savi_plugin.training.scoring import Objective, Scores
from savi_plugin.training.token_logprobs import response_token_stats
from tests.builders import phrase_batch, write_jsonl

V = 13


def identity(x):
    return x


def make_logits(seed=0, pairs=3, length=9):
    """Policy/reference logits of chosen rows [:pairs] and rejected rows [pairs:], targets with -100 padding."""
    g = torch.Generator().manual_seed(seed)
    policy = torch.randn(2 * pairs, length, V, dtype=torch.float64, generator=g) * 2
    reference = policy + 0.5 * torch.randn(2 * pairs, length, V, dtype=torch.float64, generator=g)
    targets = torch.randint(V, (2 * pairs, length), generator=g)
    for row in range(2 * pairs):
        targets[row, 3 + row % 4:] = -100  # responses of different lengths, padded
    phrase = torch.where(targets != -100, torch.randint(0, 3, targets.shape, generator=g), 0)
    return policy, reference, targets, phrase


def scores_of(policy, reference, targets, kl=None, kl_sides=("chosen",)):
    """The scoring core with an identity 'head' over given logits: the states are the logits themselves."""
    pairs = policy.shape[0] // 2
    sides = {}
    for name, rows in (("chosen", slice(0, pairs)), ("rejected", slice(pairs, None))):
        sides[name] = response_token_stats(policy[rows], identity, targets[rows],
                                           reference_hidden_states=None if reference is None else reference[rows],
                                           kl=kl if name in kl_sides else None)
    return Scores(sides)


# ------------------------------------------------------------------------------ declared flags and parameters
def test_each_loss_declares_what_it_needs():
    req = {name: Objective(name).requirements for name in ("dpo", "ipo", "rrpo", "simpo", "tdpo")}
    assert (req["dpo"].level, req["dpo"].reference, req["dpo"].length_normalize) == ("sequence", True, False)
    assert (req["ipo"].level, req["ipo"].length_normalize) == ("sequence", True)
    assert (req["rrpo"].level, req["rrpo"].kl, req["rrpo"].kl_sides, req["rrpo"].tags) == (
        "token", "ref||policy", ("chosen",), True)
    assert (req["simpo"].reference, req["simpo"].length_normalize) == (False, True)
    assert (req["tdpo"].kl, req["tdpo"].kl_sides) == ("policy||ref", ("chosen", "rejected"))
    # the trainer's scoring follows the flags: a reference-free loss runs no reference at all
    assert Objective("simpo").scoring_options("adapter")["reference"] == "none"
    assert Objective("rrpo", options={"kl_scope": "official"}).scoring_options("adapter")["sides"] == (
        "chosen", "rejected", "template")
    # alpha 0 is RRPO "w/o KL": no KL is required (the chosen KL is still logged as kl/chosen)
    no_kl = Objective("rrpo", {"alpha": 0.0})
    assert no_kl.requirements.kl_sides == () and no_kl.scoring_options("adapter")["kl_sides"] == ("chosen",)
    # "w/o R*": the sequence-level reward needs no phrase tags
    assert Objective("rrpo", options={"reward": "sequence"}).requirements.tags is False


@pytest.mark.parametrize("loss_type, shared, options, message", [
    ("rrpo", {"beta": -1.0}, None, "beta: must be > 0, got -1.0"),
    ("rrpo", {"alpha": -0.5}, None, "alpha: must be >= 0, got -0.5"),
    ("dpo", {"label_smoothing": 0.7}, None, "label_smoothing: must be >= 0 and < 0.5, got 0.7"),
    ("rrpo", None, {"kl_scope": "everything"}, "loss_options.kl_scope: unknown kl_scope 'everything'"),
    ("rrpo", None, {"gama": 1.0}, "loss_options.gama: unknown option of loss 'rrpo'"),
    ("simpo", None, {"gamma": "big"}, "loss_options.gamma: expected float"),
    ("tdpo", None, {"variant": 3}, "loss_options.variant: unknown variant 3"),
])
def test_hyper_parameters_are_checked_naming_the_field(loss_type, shared, options, message):
    with pytest.raises(ConfigError) as info:
        Objective(loss_type, shared, options)
    assert str(info.value).startswith(message)


def test_config_checks_the_loss_parameters_and_keeps_the_loss_defaults(tmp_path):
    from savi_plugin.training.config import PreferenceConfig

    with pytest.raises(ValueError, match=r"^beta: must be > 0, got -1"):
        PreferenceConfig(output_dir=str(tmp_path), loss_type="rrpo", beta=-1.0, use_cpu=True)
    rrpo = PreferenceConfig(output_dir=str(tmp_path), loss_type="rrpo", use_cpu=True).objective().params
    assert (rrpo.beta, rrpo.alpha, rrpo.kl_scope, rrpo.reward) == (0.1, 0.01, "response", "refined")
    simpo = PreferenceConfig(output_dir=str(tmp_path), loss_type="simpo", use_cpu=True).objective().params
    assert (simpo.beta, simpo.gamma) == (2.0, 1.0)  # its own defaults, not DPO's beta
    # a shared value the loss does not declare is not its parameter (DPO has no alpha)
    dpo = PreferenceConfig(output_dir=str(tmp_path), loss_type="dpo", alpha=0.3, use_cpu=True).objective().params
    assert not hasattr(dpo, "alpha")


# ------------------------------------------------------------------------------ the losses
def _sequence(stats, values, mean=False):
    total = torch.where(stats.mask, values, 0.0).sum(-1)
    return total / stats.mask.sum(-1) if mean else total


def test_simpo_is_reference_free_and_length_normalised():
    """Meng et al. 2024, eq. 6, written out with per-token means."""
    policy, _, targets, _ = make_logits(seed=1)
    scores = scores_of(policy, None, targets, kl_sides=())
    _, losses, metrics = Objective("simpo", {"beta": 2.5}, {"gamma": 0.7})(scores, phrase_batch(None, None))
    c, r = scores.chosen, scores.rejected
    for b in range(3):
        mean_c = sum(c.policy_logps[b, t].item() for t in range(c.mask.shape[1]) if c.mask[b, t]) / int(c.mask[b].sum())
        mean_r = sum(r.policy_logps[b, t].item() for t in range(r.mask.shape[1]) if r.mask[b, t]) / int(r.mask[b].sum())
        u = 2.5 * mean_c - 2.5 * mean_r - 0.7
        assert losses[b].item() == pytest.approx(math.log1p(math.exp(-u)), abs=1e-9)
        assert metrics["rewards/chosen"][b].item() == pytest.approx(2.5 * mean_c, abs=1e-9)


@pytest.mark.parametrize("variant", [1, 2])
def test_tdpo_equals_the_papers_formula_from_full_logits(variant):
    """Zeng et al. 2024: sequential KL(policy || ref) on both responses, TDPO1 / TDPO2 (stop-gradient on D+)."""
    policy, reference, targets, _ = make_logits(seed=2)
    policy = policy.clone().requires_grad_()
    beta, alpha = 0.3, 0.4
    scores = scores_of(policy, reference, targets, kl="policy||ref", kl_sides=("chosen", "rejected"))
    _, losses, _ = Objective("tdpo", {"beta": beta, "alpha": alpha}, {"variant": variant})(scores, phrase_batch(None, None))

    # the authors' structure: softmax / log over every position, KL(pi || ref), masked sums
    p = policy.softmax(-1)
    logp, ref_logp = p.log(), reference.softmax(-1).log()
    kl = (p * (logp - ref_logp)).sum(-1)
    mask = targets != -100
    safe = targets.clamp(min=0)[..., None]
    margin = torch.where(mask, (logp.gather(-1, safe) - ref_logp.gather(-1, safe))[..., 0], 0.0).sum(-1)
    seq_kl = torch.where(mask, kl, 0.0).sum(-1)
    mc, mr, kc, kr = margin[:3], margin[3:], seq_kl[:3], seq_kl[3:]
    logits = (mc - mr) - (kr - kc) if variant == 1 else (mc - mr) - alpha * (kr - kc.detach())
    expected = -torch.nn.functional.logsigmoid(beta * logits)
    torch.testing.assert_close(losses, expected, atol=1e-10, rtol=0)
    grad, = torch.autograd.grad(losses.sum(), policy)
    expected_grad, = torch.autograd.grad(expected.sum(), policy)
    torch.testing.assert_close(grad, expected_grad, atol=1e-10, rtol=0)


def test_rrpo_ablations_by_name():
    policy, reference, targets, phrase = make_logits(seed=3)
    scores = scores_of(policy, reference, targets, kl="ref||policy")
    batch = phrase_batch(phrase[:3], phrase[3:])
    _, full, metrics = Objective("rrpo", {"beta": 0.2, "alpha": 0.05})(scores, batch)
    _, without_kl, _ = Objective("rrpo", {"beta": 0.2, "alpha": 0.0})(scores, batch)
    torch.testing.assert_close(full - without_kl, 0.05 * scores.chosen.total(scores.chosen.kl), atol=1e-12, rtol=0)
    torch.testing.assert_close(without_kl.float(), metrics["rrpo/preference_loss"], atol=1e-6, rtol=0)
    # "w/o R*" (sequence-level reward) without KL is DPO on summed log-probs: every token carries the reward
    _, sequence, _ = Objective("rrpo", {"beta": 0.2, "alpha": 0.0}, {"reward": "sequence"})(scores, batch)
    _, dpo, _ = Objective("dpo", {"beta": 0.2})(scores, batch)
    torch.testing.assert_close(sequence, dpo, atol=1e-12, rtol=0)
    assert not torch.allclose(sequence, without_kl)  # the refined reward sees the phrases only


# ------------------------------------------------------------------------------ per-pair weights
def test_weights_of_one_are_the_plain_mean_and_weights_scale_each_pair():
    losses = torch.tensor([0.5, 2.0, 1.0], requires_grad=True)
    assert weighted_mean(losses, torch.ones(3)).item() == pytest.approx(losses.mean().item())
    assert weighted_mean(losses, torch.full((3,), 0.25)).item() == pytest.approx(losses.mean().item())
    assert weighted_mean(losses, torch.tensor([2.0, 1.0, 1.0])).item() == pytest.approx((1.0 + 2.0 + 1.0) / 4)
    grad, = torch.autograd.grad(weighted_mean(losses, torch.tensor([3.0, 1.0, 0.0])), losses)
    assert grad.tolist() == pytest.approx([0.75, 0.25, 0.0])  # a pair's share of the gradient is its weight's
    policy, reference, targets, phrase = make_logits(seed=4)
    scores = scores_of(policy, reference, targets, kl="ref||policy")
    batch = phrase_batch(phrase[:3], phrase[3:])
    for name in ("dpo", "rrpo"):
        objective = Objective(name)
        plain, losses, _ = objective(scores, batch)
        assert plain.item() == pytest.approx(losses.mean().item())
        assert objective(scores, phrase_batch(phrase[:3], phrase[3:], torch.ones(3)))[0].item() == pytest.approx(plain.item())
        weighted = objective(scores, phrase_batch(phrase[:3], phrase[3:], torch.tensor([1.0, 0.0, 3.0])))[0]
        assert weighted.item() == pytest.approx((losses[0] + 3 * losses[2]).item() / 4)


def test_the_collator_carries_each_pairs_weight(tiny_llava_onevision, synthetic_samples, tmp_path):

    from savi_plugin.models import load_backend
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset

    s = synthetic_samples
    records = [{"id": f"p{i}", "video": s[i].video, "question": s[i].question, "chosen": s[i].answer,
                "rejected": "no", **({"weight": w} if w is not None else {})} for i, w in enumerate([0.5, None, 2.0])]
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, records)
    backend = load_backend(tiny_llava_onevision, num_frames=4)
    dataset = PreferenceDataset(path, backend.tokenizer, backend.end_of_turn)
    batch = PreferenceCollator(backend, num_frames=4)([dataset[i] for i in range(3)])
    assert batch.weights.tolist() == [0.5, 1.0, 2.0]


# ------------------------------------------------------------------------------ a loss from outside the package
def test_a_new_loss_is_one_file_and_one_entry_point(tmp_path, monkeypatch):
    """A throw-away distribution on sys.path declares a loss; the config and the objective use it, no edit here."""
    (tmp_path / "margin_loss.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass

        import torch

        from savi_plugin.config.values import Positive, checked
        from savi_plugin.losses.base import LossOutput, PreferenceLoss, Requirements


        @dataclass(frozen=True)
        class Params:
            margin: float = checked(1.0, Positive())


        class Hinge(PreferenceLoss):
            name = "hinge"
            Params = Params

            def requirements(self, params):
                return Requirements(level="sequence", reference=False, length_normalize=True)

            def compute(self, inputs, params):
                gap = inputs.policy_chosen - inputs.policy_rejected
                return LossOutput(torch.relu(params.margin - gap), gap.detach(), -gap.detach())


        HINGE = Hinge()
    '''))
    info = tmp_path / "margin_loss-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: margin-loss\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[savi_plugin.losses]\nhinge = margin_loss:HINGE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "margin_loss", raising=False)

    from savi_plugin.training.config import PreferenceConfig

    config = PreferenceConfig(output_dir=str(tmp_path / "out"), loss_type="hinge", loss_options={"margin": 0.5},
                              use_cpu=True)
    objective = config.objective()
    assert objective.scoring_options("adapter")["reference"] == "none" and objective.length_normalize
    policy, _, targets, _ = make_logits(seed=5)
    scores = scores_of(policy, None, targets, kl_sides=())
    loss, losses, _ = objective(scores, phrase_batch(None, None))
    gap = scores.chosen.total(normalize=True) - scores.rejected.total(normalize=True)
    torch.testing.assert_close(losses, torch.relu(0.5 - gap))
    with pytest.raises(ValueError, match="margin: must be > 0"):
        PreferenceConfig(output_dir=str(tmp_path / "out"), loss_type="hinge", loss_options={"margin": 0},
                         use_cpu=True)
