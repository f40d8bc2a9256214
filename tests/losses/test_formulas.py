"""DPO / cDPO / IPO and RRPO losses against naive, loop-by-loop implementations of the papers' formulas."""

import math
import random

import pytest
import torch

from savi_plugin import registry
from savi_plugin.bench.official_loss import rrpo_loss_from_logits
from savi_plugin.losses import dpo_loss, ipo_loss, rrpo_loss
from savi_plugin.training.token_logprobs import token_kl

VOCAB = 11
JUNK_PHRASE = 7  # phrase id written on ignored positions: must never count


# ----------------------------------------------------------------------------------------------- helpers

def make_sequence(rng, prompt_len, response_len, n_phrases):
    """One sequence: logits/ref logits per position, labels (-100 on the prompt), phrase ids on labels."""
    length = prompt_len + response_len
    logits = torch.randn(length, VOCAB, dtype=torch.float64, generator=rng) * 2
    ref_logits = logits + 0.5 * torch.randn(length, VOCAB, dtype=torch.float64, generator=rng)
    labels = [-100] * prompt_len + [int(torch.randint(VOCAB, (1,), generator=rng)) for _ in range(response_len)]
    phrase = [JUNK_PHRASE] * prompt_len + [0] * response_len
    # n_phrases disjoint runs inside the response, numbered 1..n in order
    starts = sorted(random.Random(int(torch.randint(10**6, (1,), generator=rng))).sample(
        range(response_len), n_phrases))
    for k, start in enumerate(starts, start=1):
        stop = starts[k] if k < n_phrases else response_len
        for t in range(start, min(stop, start + 2)):
            phrase[prompt_len + t] = k
    return {"logits": logits, "ref": ref_logits, "labels": labels, "phrase": phrase}


def pad_rows(seqs, left_pads, total_len, rng):
    """Stack sequences into [n, total_len, V] with junk logits / -100 labels / junk ids in the padding."""
    n = len(seqs)
    logits = torch.randn(n, total_len, VOCAB, dtype=torch.float64, generator=rng) * 5
    ref = torch.randn(n, total_len, VOCAB, dtype=torch.float64, generator=rng) * 5
    labels = torch.full((n, total_len), -100, dtype=torch.long)
    phrase = torch.full((n, total_len), JUNK_PHRASE, dtype=torch.long)
    for i, (seq, left) in enumerate(zip(seqs, left_pads)):
        length = len(seq["labels"])
        logits[i, left:left + length] = seq["logits"]
        ref[i, left:left + length] = seq["ref"]
        labels[i, left:left + length] = torch.tensor(seq["labels"])
        phrase[i, left:left + length] = torch.tensor(seq["phrase"])
    return logits, ref, labels, phrase


def naive_log_softmax(row):
    values = row.tolist()
    top = max(values)
    lse = top + math.log(sum(math.exp(v - top) for v in values))
    return [v - lse for v in values]


def naive_rrpo(seq_chosen, seq_rejected, beta, alpha):
    """MISSION.md: -log sigma(beta * sum_i [chosen phrase_i log-ratio - rejected phrase_i log-ratio])
    + alpha * sum_{t in y+} KL(ref || policy), written with Python loops over phrases, tokens and vocab."""
    def token_terms(seq):
        # position t predicts label t+1; a token is (log pi, log ref, phrase id, KL at that position)
        out = []
        for t in range(len(seq["labels"]) - 1):
            label = seq["labels"][t + 1]
            if label == -100:
                continue
            pol = naive_log_softmax(seq["logits"][t])
            ref = naive_log_softmax(seq["ref"][t])
            kl = sum(math.exp(r) * (r - p) for r, p in zip(ref, pol))
            out.append((pol[label], ref[label], seq["phrase"][t + 1], kl))
        return out

    chosen, rejected = token_terms(seq_chosen), token_terms(seq_rejected)
    phrases = sorted({tok[2] for tok in chosen + rejected if tok[2] > 0})
    inner = 0.0
    chosen_reward = rejected_reward = 0.0
    for i in phrases:
        c_i = sum(p - r for p, r, k, _ in chosen if k == i)
        r_i = sum(p - r for p, r, k, _ in rejected if k == i)
        inner += c_i - r_i
        chosen_reward += beta * c_i
        rejected_reward += beta * r_i
    u = beta * inner
    kl = sum(tok[3] for tok in chosen)
    loss = -math.log(1.0 / (1.0 + math.exp(-u))) + alpha * kl
    return loss, chosen_reward, rejected_reward


def make_batch(seed=0):
    rng = torch.Generator().manual_seed(seed)
    # chosen/rejected with different prompt lengths, response lengths and phrase counts
    chosen = [make_sequence(rng, 3, 6, 2), make_sequence(rng, 5, 4, 1), make_sequence(rng, 2, 8, 3)]
    rejected = [make_sequence(rng, 3, 3, 1), make_sequence(rng, 5, 7, 3), make_sequence(rng, 2, 5, 2)]
    left = [0, 2, 1, 3, 0, 1]  # padding on the left for some rows, and on the right for all but the longest
    logits, ref, labels, phrase = pad_rows(chosen + rejected, left, 14, rng)
    return chosen, rejected, logits, ref, labels, phrase


# ------------------------------------------------------------------------------------------------- RRPO

def test_rrpo_from_logits_matches_naive_formula():
    beta, alpha = 0.3, 0.05
    chosen, rejected, logits, ref, labels, phrase = make_batch()
    losses, chosen_rewards, rejected_rewards = rrpo_loss_from_logits(logits, ref, labels, phrase, beta, alpha)
    assert losses.shape == chosen_rewards.shape == rejected_rewards.shape == (3,)
    for b in range(3):
        loss, c_reward, r_reward = naive_rrpo(chosen[b], rejected[b], beta, alpha)
        assert abs(losses[b].item() - loss) < 1e-6
        assert abs(chosen_rewards[b].item() - c_reward) < 1e-6
        assert abs(rejected_rewards[b].item() - r_reward) < 1e-6
    # the KL term really contributes (the check above would pass with alpha ignored otherwise)
    no_kl, _, _ = rrpo_loss_from_logits(logits, ref, labels, phrase, beta, 0.0)
    assert (losses - no_kl).min() > 1e-3


def test_rrpo_pair_alone_equals_batched():
    beta, alpha = 0.1, 0.01
    chosen, rejected, logits, ref, labels, phrase = make_batch(seed=3)
    batched, _, _ = rrpo_loss_from_logits(logits, ref, labels, phrase, beta, alpha)
    rng = torch.Generator().manual_seed(99)
    for b in range(3):
        # the pair alone, with different (minimal) padding
        length = max(len(chosen[b]["labels"]), len(rejected[b]["labels"]))
        a_logits, a_ref, a_labels, a_phrase = pad_rows([chosen[b], rejected[b]], [0, 0], length, rng)
        alone, _, _ = rrpo_loss_from_logits(a_logits, a_ref, a_labels, a_phrase, beta, alpha)
        assert abs(alone.item() - batched[b].item()) < 1e-10


def test_rrpo_token_level_equals_from_logits():
    beta, alpha = 0.5, 0.1
    _, _, logits, ref, labels, phrase = make_batch(seed=1)
    expected, exp_c, exp_r = rrpo_loss_from_logits(logits, ref, labels, phrase, beta, alpha)

    targets, mask = labels[:, 1:], labels[:, 1:] != -100
    pol_lp = torch.log_softmax(logits[:, :-1], -1)
    ref_lp = torch.log_softmax(ref[:, :-1], -1)
    pol_tok = pol_lp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    ref_tok = ref_lp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    ids = torch.where(mask, phrase[:, 1:], 0)
    kl = token_kl(ref_lp[:3], pol_lp[:3])
    # garbage in the padding of the token-level inputs must not leak in
    pol_tok = torch.where(mask, pol_tok, torch.tensor(float("-inf"), dtype=torch.float64))
    out = rrpo_loss(pol_tok[:3], pol_tok[3:], ref_tok[:3], ref_tok[3:], ids[:3], ids[3:],
                    torch.where(mask[:3], kl, 1e9), mask[:3], beta=beta, alpha=alpha)
    assert torch.allclose(out.losses, expected, atol=1e-12, rtol=0)
    assert torch.allclose(out.chosen_rewards, exp_c, atol=1e-12, rtol=0)
    assert torch.allclose(out.rejected_rewards, exp_r, atol=1e-12, rtol=0)
    losses, _, _ = out[:3]
    assert losses is out.losses
    assert torch.allclose(out.metrics["preference_loss"] + alpha * out.metrics["kl"], expected, atol=1e-12)
    assert out.metrics["chosen_phrase_tokens"].tolist() == [int(((ids[b] > 0) & mask[b]).sum()) for b in range(3)]


def test_rrpo_only_total_over_phrases_matters():
    """Renumbering phrases (or merging them) does not change the loss: only the total enters the sigmoid."""
    _, _, logits, ref, labels, phrase = make_batch(seed=2)
    base, _, _ = rrpo_loss_from_logits(logits, ref, labels, phrase, 0.2, 0.01)
    merged = torch.where(phrase > 0, torch.ones_like(phrase), phrase)
    renumbered = torch.where(phrase > 0, 10 - phrase, phrase)
    assert torch.allclose(base, rrpo_loss_from_logits(logits, ref, labels, merged, 0.2, 0.01)[0], atol=1e-12)
    assert torch.allclose(base, rrpo_loss_from_logits(logits, ref, labels, renumbered, 0.2, 0.01)[0], atol=1e-12)


def test_rrpo_gradients_finite_and_reach_policy_only():
    _, _, logits, ref, labels, phrase = make_batch(seed=4)
    logits = (logits * 20).requires_grad_()  # sharp distributions: tiny probabilities everywhere
    ref = (ref * 20).requires_grad_()
    losses, _, _ = rrpo_loss_from_logits(logits, ref, labels, phrase, 0.1, 0.01)
    losses.sum().backward()
    assert torch.isfinite(losses).all()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert ref.grad is None or ref.grad.abs().sum() == 0
    # positions that predict an ignored label get no gradient
    ignored = labels[:, 1:] == -100
    assert logits.grad[:, :-1][ignored].abs().max() == 0


def test_rrpo_reference_with_zero_probabilities_is_not_nan():
    """log_softmax, not softmax().log(): a -inf reference logit must give 0, never 0 * -inf = nan."""
    _, _, logits, ref, labels, phrase = make_batch(seed=5)
    labels = torch.where(labels == VOCAB - 1, 0, labels)  # the reference may rule out a token never seen
    ref[..., VOCAB - 1] = float("-inf")
    losses, _, _ = rrpo_loss_from_logits(logits.requires_grad_(), ref, labels, phrase, 0.1, 0.01)
    losses.sum().backward()
    assert torch.isfinite(losses).all() and torch.isfinite(logits.grad).all()


def test_rrpo_bf16_logits_are_upcast():
    _, _, logits, ref, labels, phrase = make_batch(seed=6)
    exact, _, _ = rrpo_loss_from_logits(logits.float(), ref.float(), labels, phrase, 0.1, 0.01)
    half, _, _ = rrpo_loss_from_logits(logits.bfloat16(), ref.bfloat16(), labels, phrase, 0.1, 0.01)
    assert half.dtype == torch.float32
    assert torch.allclose(half, exact, atol=0.05)


def test_rrpo_rejects_bad_arguments():
    _, _, logits, ref, labels, phrase = make_batch()
    with pytest.raises(ValueError, match="beta"):
        rrpo_loss_from_logits(logits, ref, labels, phrase, 0.0, 0.01)
    with pytest.raises(ValueError, match="2B rows"):
        rrpo_loss_from_logits(logits[:5], ref[:5], labels[:5], phrase[:5], 0.1, 0.01)
    with pytest.raises(ValueError, match="chosen_mask"):
        x = torch.zeros(2, 4)
        rrpo_loss(x, x, x, x, x.long(), x.long(), x, torch.ones(2, 3, dtype=torch.bool), beta=0.1, alpha=0.0)


# ------------------------------------------------------------------------------------------ DPO / IPO

def _logps(seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    return [(-20 * torch.rand(n, dtype=torch.float64, generator=g)) for _ in range(4)]


def test_dpo_matches_paper_formula():
    pc, pr, rc, rr = _logps()
    beta = 0.1
    losses, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, beta)
    for i in range(5):
        h = (pc[i] - rc[i]).item() - (pr[i] - rr[i]).item()
        assert abs(losses[i].item() - (-math.log(1 / (1 + math.exp(-beta * h))))) < 1e-12
        assert abs(chosen_rewards[i].item() - beta * (pc[i] - rc[i]).item()) < 1e-12
        assert abs(rejected_rewards[i].item() - beta * (pr[i] - rr[i]).item()) < 1e-12


def test_cdpo_label_smoothing():
    pc, pr, rc, rr = _logps(1)
    beta, eps = 0.5, 0.2
    losses, _, _ = dpo_loss(pc, pr, rc, rr, beta, label_smoothing=eps)
    sig = lambda x: 1 / (1 + math.exp(-x))
    for i in range(5):
        h = (pc[i] - rc[i]).item() - (pr[i] - rr[i]).item()
        expected = -(1 - eps) * math.log(sig(beta * h)) - eps * math.log(sig(-beta * h))
        assert abs(losses[i].item() - expected) < 1e-12
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(pc, pr, rc, rr, beta, label_smoothing=0.5)


def test_ipo_formula():
    pc, pr, rc, rr = _logps(2)
    beta = 0.1
    losses, chosen_rewards, _ = ipo_loss(pc, pr, rc, rr, beta)
    for i in range(5):
        h = (pc[i] - pr[i]).item() - (rc[i] - rr[i]).item()
        assert abs(losses[i].item() - (h - 1 / (2 * beta)) ** 2) < 1e-9
    assert torch.allclose(chosen_rewards, beta * (pc - rc))
    with pytest.raises(ValueError, match="label smoothing"):
        ipo_loss(pc, pr, rc, rr, beta, label_smoothing=0.1)


def test_dpo_gradients_finite_and_rewards_detached():
    pc, pr, rc, rr = [t * 1000 for t in _logps(3)]  # huge margins: logsigmoid must not overflow
    pc.requires_grad_()
    pr.requires_grad_()
    for fn in (dpo_loss, ipo_loss):
        losses, c, r = fn(pc, pr, rc, rr, 0.1)
        assert torch.isfinite(losses).all()
        assert not c.requires_grad and not r.requires_grad
        grads = torch.autograd.grad(losses.sum(), (pc, pr))
        assert all(torch.isfinite(g).all() for g in grads)


def test_dpo_batched_equals_alone_and_shape_check():
    pc, pr, rc, rr = _logps(4)
    batched, _, _ = dpo_loss(pc, pr, rc, rr, 0.1)
    alone, _, _ = dpo_loss(pc[2:3], pr[2:3], rc[2:3], rr[2:3], 0.1)
    assert alone.item() == pytest.approx(batched[2].item(), abs=1e-15)
    with pytest.raises(ValueError, match="same shape"):
        dpo_loss(pc, pr[:3], rc, rr, 0.1)


def test_losses_are_registered_entry_points():
    from savi_plugin.losses.dpo import DPO_LOSS, IPO_LOSS
    from savi_plugin.losses.rrpo import RRPO_LOSS

    assert {"dpo", "ipo", "rrpo", "simpo", "tdpo"} <= set(registry.available(registry.LOSSES))
    assert registry.load(registry.LOSSES, "dpo") is DPO_LOSS
    assert registry.load(registry.LOSSES, "ipo") is IPO_LOSS
    assert registry.load(registry.LOSSES, "rrpo") is RRPO_LOSS
