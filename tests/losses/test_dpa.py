"""DPA (HALVA, arXiv 2405.18654) against the paper's equations written out here, and against the official
trainer's ``compute_loss`` run unchanged outside this repository (``tests/fixtures/dpa_ddpo_official.json``)."""

import json
import math

import pytest
import torch

from savi_plugin.losses import dpa_loss
from savi_plugin.training.scoring import Objective
from tests.builders import FIXTURES, official_token_case

OFFICIAL = json.loads((FIXTURES / "dpa_ddpo_official.json").read_text())


def paper_dpa(policy_chosen, policy_rejected, chosen_ids, rejected_ids, chosen_kl, alpha):
    """Eq. of DPA, one pair at a time, in plain Python: the mean over phrases of
    -log( p(y+_k) / (p(y+_k) + p(y-_k)) ), plus alpha times the summed token KL on the chosen response."""
    out = []
    for b in range(len(policy_chosen)):
        phrases = sorted({int(k) for k in chosen_ids[b] if k > 0} | {int(k) for k in rejected_ids[b] if k > 0})
        terms = []
        for k in phrases:
            pos = sum(float(x) for x, i in zip(policy_chosen[b], chosen_ids[b]) if i == k)
            neg = sum(float(x) for x, i in zip(policy_rejected[b], rejected_ids[b]) if i == k)
            terms.append(-math.log(math.exp(pos) / (math.exp(pos) + math.exp(neg))))
        alignment = sum(terms) / len(terms) if terms else 0.0
        out.append(alignment + alpha * sum(float(x) for x in chosen_kl[b]))
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_dpa_equals_the_papers_formula(alpha):
    rng = torch.Generator().manual_seed(3)
    pairs, tc, tr = 4, 9, 7
    chosen, rejected = -torch.rand(pairs, tc, generator=rng, dtype=torch.float64) * 3, \
        -torch.rand(pairs, tr, generator=rng, dtype=torch.float64) * 3
    chosen_ids = torch.randint(0, 4, (pairs, tc), generator=rng)
    rejected_ids = torch.randint(0, 4, (pairs, tr), generator=rng)
    chosen_ids[0], rejected_ids[0] = 0, 0  # a pair without phrases: alignment 0
    rejected_ids[1] = torch.where(rejected_ids[1] == 3, 0, rejected_ids[1])  # phrase 3 on the chosen side only
    chosen_mask = torch.ones(pairs, tc, dtype=torch.bool)
    chosen_mask[2, 6:] = False  # padding: junk ids and log-probs there must not count
    chosen_ids[2, 6:], chosen[2, 6:] = 2, -50.0
    kl = torch.rand(pairs, tc, generator=rng, dtype=torch.float64)
    out = dpa_loss(chosen, rejected, chosen_ids, rejected_ids, chosen_mask, torch.ones(pairs, tr, dtype=torch.bool),
                   kl, alpha=alpha)
    masked = [[x for x, m in zip(row, mrow) if m] for row, mrow in zip(chosen.tolist(), chosen_mask.tolist())]
    masked_ids = [[x for x, m in zip(row, mrow) if m] for row, mrow in zip(chosen_ids.tolist(), chosen_mask.tolist())]
    masked_kl = [[x for x, m in zip(row, mrow) if m] for row, mrow in zip(kl.tolist(), chosen_mask.tolist())]
    expected = paper_dpa(masked, rejected.tolist(), masked_ids, rejected_ids.tolist(), masked_kl, alpha)
    torch.testing.assert_close(out.losses, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)
    assert out.losses[0] == pytest.approx(alpha * float(kl[0].sum()))


def test_dpa_equals_the_official_halva_trainer():
    """Equal where every pair of a batch has as many phrases (and always at one pair per batch); elsewhere the
    official mean also counts the batch's other phrase columns as constant log 2 terms (the documented
    difference), which this test reproduces from our per-pair values."""
    for case in OFFICIAL["cases"]:
        inputs = official_token_case(case)
        counts = [len({k for k in row if k > 0}) for row in case["pos_signs"]]
        for alpha in (0.0, 0.4):
            out = dpa_loss(inputs["policy_chosen"], inputs["policy_rejected"], inputs["chosen_phrase_ids"],
                           inputs["rejected_phrase_ids"], inputs["chosen_mask"], inputs["rejected_mask"],
                           inputs["chosen_kl"], alpha=alpha)
            official = case["dpa_official_loss"][str(alpha)]
            if len(set(counts)) == 1:
                assert float(out.losses.mean()) == pytest.approx(official, abs=1e-5)
            else:
                columns = max(counts)
                alignment = out.metrics["alignment_loss"]
                padded = sum(float(a) * n + (columns - n) * math.log(2) for a, n in zip(alignment, counts))
                kl = float(out.metrics["kl"].mean()) if alpha else 0.0
                assert padded / (columns * len(counts)) + alpha * kl == pytest.approx(official, abs=1e-5)
                assert float(out.losses.mean()) != pytest.approx(official, abs=1e-3)


def test_dpa_declares_tags_and_a_reference_only_for_its_kl():
    with_kl, without = Objective("dpa").requirements, Objective("dpa", {"alpha": 0}).requirements
    assert (with_kl.level, with_kl.reference, with_kl.kl, with_kl.kl_sides, with_kl.tags) == (
        "token", True, "ref||policy", ("chosen",), True)
    assert (without.reference, without.kl_sides, without.tags) == (False, (), True)
    assert Objective("dpa").params.alpha == 0.4
