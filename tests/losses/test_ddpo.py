"""DDPO (RLHF-V, arXiv 2312.00849) against the paper's weighted likelihood written out here, and against the
official Muffin functions run unchanged outside this repository (``tests/fixtures/dpa_ddpo_official.json``)."""

import json
import math

import pytest
import torch

from savi_plugin.losses import ddpo_loss, dpo_loss
from savi_plugin.training.scoring import Objective
from tests.builders import FIXTURES, official_token_case

OFFICIAL = json.loads((FIXTURES / "dpa_ddpo_official.json").read_text())


def weighted(logps, ids, gamma, average):
    """RLHF-V's dense score of one response: unchanged tokens weigh 1, changed (tagged) tokens gamma; divided by
    N = |y_u| + gamma |y_c| in the normalised form."""
    unchanged = [x for x, k in zip(logps, ids) if k == 0]
    changed = [x for x, k in zip(logps, ids) if k > 0]
    score = sum(unchanged) + gamma * sum(changed)
    return score / (len(unchanged) + gamma * len(changed)) if average else score


@pytest.mark.parametrize("gamma, average", [(1.1, False), (5.0, True), (1.0, False)])
def test_ddpo_equals_the_papers_formula(gamma, average):
    rng = torch.Generator().manual_seed(5)
    pairs, tc, tr, beta = 3, 8, 6, 0.3
    tensors = [-torch.rand(pairs, t, generator=rng, dtype=torch.float64) * 3 for t in (tc, tr, tc, tr)]
    chosen_ids = torch.randint(0, 3, (pairs, tc), generator=rng)
    rejected_ids = torch.randint(0, 3, (pairs, tr), generator=rng)
    rejected_mask = torch.ones(pairs, tr, dtype=torch.bool)
    rejected_mask[1, 4:] = False
    rejected_ids[1, 4:] = 1
    out = ddpo_loss(*tensors, chosen_ids, rejected_ids, torch.ones(pairs, tc, dtype=torch.bool), rejected_mask,
                    beta=beta, gamma=gamma, average=average)
    expected = []
    for b in range(pairs):
        n = int(rejected_mask[b].sum())
        chosen = (weighted(tensors[0][b].tolist(), chosen_ids[b].tolist(), gamma, average)
                  - weighted(tensors[2][b].tolist(), chosen_ids[b].tolist(), gamma, average))
        rejected = (weighted(tensors[1][b, :n].tolist(), rejected_ids[b, :n].tolist(), gamma, average)
                    - weighted(tensors[3][b, :n].tolist(), rejected_ids[b, :n].tolist(), gamma, average))
        expected.append(math.log1p(math.exp(-beta * (chosen - rejected))))
    torch.testing.assert_close(out.losses, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)
    if gamma == 1.0 and not average:  # no weighting: DPO on sums
        sums = [t.masked_fill(~m, 0).sum(-1) for t, m in zip(tensors, (torch.ones(pairs, tc, dtype=torch.bool),
                                                                          rejected_mask) * 2)]
        torch.testing.assert_close(out.losses, dpo_loss(*sums, beta=beta)[0], atol=1e-12, rtol=0)


def test_ddpo_equals_the_official_muffin_functions():
    for case in OFFICIAL["cases"]:
        inputs = official_token_case(case)
        for key, official in case["ddpo_official_losses"].items():
            settings = dict(part.split("=") for part in key.split(","))
            out = ddpo_loss(inputs["policy_chosen"], inputs["policy_rejected"], inputs["reference_chosen"],
                            inputs["reference_rejected"], inputs["chosen_phrase_ids"], inputs["rejected_phrase_ids"],
                            inputs["chosen_mask"], inputs["rejected_mask"], beta=float(settings["beta"]),
                            gamma=float(settings["gamma"]), average=settings["average"] == "True")
            torch.testing.assert_close(out.losses, torch.tensor(official, dtype=torch.float64), atol=1e-5, rtol=0)


def test_ddpo_declares_what_it_needs_and_its_defaults():
    objective = Objective("ddpo")
    req = objective.requirements
    assert (req.level, req.reference, req.tags, req.kl) == ("token", True, True, None)
    assert (objective.params.beta, objective.params.gamma, objective.params.average) == (0.1, 1.1, False)
