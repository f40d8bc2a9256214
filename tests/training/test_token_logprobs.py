"""The response-only chunked path equals the full-logits path (values, KL and gradients) in fp32."""

import pytest
import torch
from torch import nn

from savi_plugin.bench.official_loss import rrpo_loss_from_logits
from savi_plugin.losses.rrpo import rrpo_loss
from savi_plugin.training.token_logprobs import response_token_stats
from tests.builders import REPO_ROOT

B, L, H, V = 4, 23, 16, 61
CHUNKS = [1, 7, 10_000]


def make_inputs(seed=0, bias=False):
    torch.manual_seed(seed)
    head = nn.Linear(H, V, bias=bias)
    reference_head = nn.Linear(H, V, bias=bias)
    hidden = torch.randn(B, L, H)
    reference_hidden = hidden + 0.3 * torch.randn(B, L, H)
    labels = torch.randint(V, (B, L))
    # prompt of different lengths, response, right padding; one row left-padded
    for row, (prompt, response) in enumerate([(5, 9), (8, 4), (3, 17), (10, 12)]):
        labels[row, :prompt] = -100
        labels[row, prompt + response:] = -100
    labels[3, :2] = -100
    return head, reference_head, hidden, reference_hidden, labels


def stats_of(hidden, head, labels, *, reference_hidden_states=None, compute_kl=False, **kwargs):
    """The scoring core on these tests' full-sequence layout: ``hidden[:, t]`` predicts ``labels[:, t + 1]``, so the
    states are taken without the last position and the targets without the first (the aligned convention)."""
    reference = None if reference_hidden_states is None else reference_hidden_states[:, :-1]
    return response_token_stats(hidden[:, :-1], head, labels[:, 1:], reference_hidden_states=reference,
                                kl="ref||policy" if compute_kl else None, **kwargs)


def logprobs_of(hidden, head, labels, *, packed=False, **kwargs):
    stats = stats_of(hidden, head, labels, **kwargs)
    return stats.policy_logps[stats.mask] if packed else stats.policy_logps


def kl_of(hidden, head, labels, *, packed=False, **kwargs):
    stats = stats_of(hidden, head, labels, compute_kl=True, **kwargs)
    return stats.kl[stats.mask] if packed else stats.kl


def full_logprobs(hidden, head, labels):
    """The plain path: LM head on every position, log_softmax, gather, mask."""
    logprobs = torch.log_softmax(head(hidden)[:, :-1].float(), -1)
    targets = labels[:, 1:]
    mask = targets != -100
    token = logprobs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return torch.where(mask, token, 0.0), logprobs, mask


def full_kl(policy_logprobs, reference_logprobs, mask):
    kl = (reference_logprobs.exp() * (reference_logprobs - policy_logprobs)).sum(-1)
    return torch.where(mask, kl, 0.0)


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("bias", [False, True])
def test_logprobs_equal_full_path(chunk_size, bias):
    head, _, hidden, _, labels = make_inputs(bias=bias)
    expected, _, mask = full_logprobs(hidden, head, labels)
    got = logprobs_of(hidden, head, labels, chunk_size=chunk_size)
    assert got.shape == (B, L - 1) and got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert (got[~mask] == 0).all()
    packed = logprobs_of(hidden, head.weight if not bias else head, labels, chunk_size=chunk_size,
                                     packed=True)
    assert torch.allclose(packed, expected[mask], atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_kl_and_reference_equal_full_path(chunk_size):
    head, reference_head, hidden, reference_hidden, labels = make_inputs(seed=1)
    expected_policy, policy_lp, mask = full_logprobs(hidden, head, labels)
    expected_ref, ref_lp, _ = full_logprobs(reference_hidden, reference_head, labels)
    expected_kl = full_kl(policy_lp, ref_lp, mask)
    stats = stats_of(hidden, head, labels, reference_hidden_states=reference_hidden,
                                 reference_lm_head=reference_head, compute_kl=True, chunk_size=chunk_size)
    assert torch.equal(stats.mask, mask)
    assert torch.allclose(stats.policy_logps, expected_policy, atol=1e-5, rtol=0)
    assert torch.allclose(stats.reference_logps, expected_ref, atol=1e-5, rtol=0)
    assert torch.allclose(stats.kl, expected_kl, atol=1e-5, rtol=0)
    assert (stats.kl[mask] > 0).all()
    kl = kl_of(hidden, head, labels, reference_hidden_states=reference_hidden,
                           reference_lm_head=reference_head, chunk_size=chunk_size, packed=True)
    assert torch.allclose(kl, expected_kl[mask], atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_gradients_equal_full_path(chunk_size):
    """With checkpointed chunks, d(loss)/d(hidden) and d(loss)/d(lm_head) match the full path."""
    head, reference_head, hidden, reference_hidden, labels = make_inputs(seed=2, bias=True)
    weights = torch.randn(B, L - 1)

    def loss_full(h):
        token, lp, mask = full_logprobs(h, head, labels)
        _, ref_lp, _ = full_logprobs(reference_hidden, reference_head, labels)
        return (weights * token).sum() + 0.7 * full_kl(lp, ref_lp.detach(), mask).sum()

    def loss_chunked(h):
        stats = stats_of(h, head, labels, reference_hidden_states=reference_hidden,
                                     reference_lm_head=reference_head, compute_kl=True, chunk_size=chunk_size)
        return (weights * stats.policy_logps).sum() + 0.7 * stats.kl.sum()

    grads = []
    for fn in (loss_full, loss_chunked):
        head.zero_grad()
        h = hidden.clone().requires_grad_()
        value = fn(h)
        value.backward()
        grads.append((value.detach(), h.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()))
    for full, chunked in zip(*grads):
        assert torch.allclose(full, chunked, atol=1e-5, rtol=1e-5)
    assert reference_head.weight.grad is None


def test_efficient_path_gives_the_rrpo_loss_of_the_full_logits_path():
    """Policy/reference/KL from hidden states + rrpo_loss == rrpo_loss_from_logits on full logits."""
    head, reference_head, hidden, reference_hidden, labels = make_inputs(seed=4)
    torch.manual_seed(5)
    phrase_ids = torch.where(labels != -100, torch.randint(0, 3, labels.shape), 0)
    pairs = B // 2
    expected, exp_c, exp_r = rrpo_loss_from_logits(head(hidden), reference_head(reference_hidden), labels,
                                                   phrase_ids, beta=0.1, alpha=0.01)
    chosen = stats_of(hidden[:pairs], head, labels[:pairs], reference_hidden_states=reference_hidden[:pairs],
                                  reference_lm_head=reference_head, compute_kl=True, chunk_size=5)
    rejected = stats_of(hidden[pairs:], head, labels[pairs:],
                                    reference_hidden_states=reference_hidden[pairs:], reference_lm_head=reference_head,
                                    chunk_size=5)
    ids = phrase_ids[:, 1:]
    out = rrpo_loss(chosen.policy_logps, rejected.policy_logps, chosen.reference_logps, rejected.reference_logps,
                    ids[:pairs], ids[pairs:], chosen.kl, chosen.mask, beta=0.1, alpha=0.01,
                    rejected_mask=rejected.mask)
    assert torch.allclose(out.losses, expected, atol=1e-5, rtol=0)
    assert torch.allclose(out.chosen_rewards, exp_c, atol=1e-5, rtol=0)
    assert torch.allclose(out.rejected_rewards, exp_r, atol=1e-5, rtol=0)


def test_checkpointed_chunks_do_not_keep_vocab_sized_activations():
    """Autograd keeps no [N, V] tensor on the chunked path (only chunk inputs); the full path keeps [L, V]."""
    torch.manual_seed(0)
    vocab = 4096
    head = nn.Linear(H, vocab, bias=False)
    hidden = torch.randn(2, 200, H, requires_grad=True)
    labels = torch.full((2, 200), -100)
    labels[:, -10:] = torch.randint(vocab, (2, 10))

    def saved_vocab_numel(fn):
        """Elements autograd keeps in tensors whose last dim is the vocabulary (logits, log-probs)."""
        sizes = [0]

        def pack(tensor):
            if tensor.dim() >= 2 and tensor.shape[-1] == vocab:
                sizes.append(tensor.numel())
            return tensor
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return sum(sizes)

    assert saved_vocab_numel(lambda: full_logprobs(hidden, head, labels)[0].sum()) >= 2 * 199 * vocab
    assert saved_vocab_numel(lambda: logprobs_of(hidden, head, labels, chunk_size=4).sum()) == 0
    # without checkpointing every chunk's [chunk, V] log-probs would be kept: N x V in total
    kept = saved_vocab_numel(lambda: stats_of(hidden, head, labels, chunk_size=4,
                                                          checkpoint_chunks=False).policy_logps.sum())
    assert kept >= 2 * 10 * vocab


def test_half_precision_callable_head_and_empty_selection():
    head, _, hidden, _, labels = make_inputs(seed=6)
    expected, _, _ = full_logprobs(hidden, head, labels)
    half_head = nn.Linear(H, V, bias=False).to(torch.bfloat16)
    half_head.load_state_dict(head.state_dict())
    got = logprobs_of(hidden.bfloat16(), half_head, labels)
    assert got.dtype == torch.float32 and torch.allclose(got, expected, atol=0.1)

    cap = 2.0  # a soft-capping model passes its transform with the head
    capped = logprobs_of(hidden, lambda h: cap * torch.tanh(head(h) / cap), labels, chunk_size=3)
    logits = cap * torch.tanh(head(hidden) / cap)
    targets = labels[:, 1:]
    ref = torch.log_softmax(logits[:, :-1], -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    assert torch.allclose(capped, torch.where(targets != -100, ref, 0.0), atol=1e-5)

    nothing = torch.full_like(labels, -100)
    assert (nothing[:, 1:] != -100).sum() == 0
    assert (logprobs_of(hidden, head, nothing) == 0).all()


def test_bad_arguments():
    head, _, hidden, reference_hidden, labels = make_inputs()
    with pytest.raises(ValueError, match="kl needs"):
        stats_of(hidden, head, labels, compute_kl=True)
    with pytest.raises(ValueError, match="chunk_size"):
        logprobs_of(hidden, head, labels, chunk_size=0)
    with pytest.raises(ValueError, match=r"\[B, T, H\]"):
        logprobs_of(hidden[:, :-1], head, labels)
    with pytest.raises(ValueError, match="must match"):
        stats_of(hidden, head, labels, reference_hidden_states=reference_hidden[:2])


def test_memory_benchmark_runs_and_both_paths_agree():
    """benchmarks/loss_memory.py at a tiny shape: both paths run in fresh processes and give the same loss."""
    import re
    import subprocess
    import sys

    script = REPO_ROOT / "benchmarks" / "loss_memory.py"
    done = subprocess.run([sys.executable, str(script), "--video-tokens", "300", "--vocab", "2000", "--hidden", "32",
                           "--response-tokens", "16", "--chunk-size", "8"], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    peaks = dict(re.findall(r"(efficient|full): peak extra memory\s+([\d.]+) MiB", done.stdout))
    assert set(peaks) == {"efficient", "full"}
    assert float(peaks["full"]) > float(peaks["efficient"])
    assert float(re.search(r"\|loss difference\|: ([\d.e+-]+)", done.stdout).group(1)) < 1e-5
