"""Peak memory of the RRPO loss: response-only chunked path vs. full-logits path, at a long-video shape.

    python benchmarks/loss_memory.py                      # ~2,000 video tokens, 64 response tokens, V = 32k
    python benchmarks/loss_memory.py --vocab 152064       # Qwen2's vocabulary

Both paths start from the same final hidden states of one preference pair (2 rows: chosen, rejected) for the
policy and the reference, share one frozen LM head (the disabled-LoRA reference), and run the RRPO loss
forward **and backward** (the gradient reaches the policy hidden states, as in LoRA training):

* ``full``: ``lm_head`` on every position for policy and reference, then ``rrpo_loss_from_logits``
  (the published layout: ``[2B, L, V]`` logits, log-softmax and KL over all of them);
* ``efficient``: ``savi_plugin.training.token_logprobs.response_token_stats`` (response positions only,
  chunks of ``--chunk-size`` positions, checkpointed) and ``rrpo_loss``.

How memory is measured (CPU, honestly): PyTorch has no allocator statistics for CPU tensors, and
``tracemalloc`` does not see them. Each path therefore runs in its **own fresh subprocess**: it builds the
inputs, does a tiny warm-up (thread pools, kernels), returns freed heap to the OS (``malloc_trim``), records
the resident set size (``VmRSS``), resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), runs the
loss forward+backward, and reads the peak (``VmHWM``). The number printed is ``VmHWM - VmRSS(before)``: the
extra resident memory the loss needed, allocator overhead included. Where the peak counter cannot be reset,
the peak of the whole process (``ru_maxrss``) is used instead and the output says so. The workers pin
glibc's mmap threshold (``MALLOC_MMAP_THRESHOLD_=131072``) so that freed tensors leave the resident set
instead of being kept by the heap. Linux only.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import time

MIB = 1024 * 1024
# Pin glibc's mmap threshold (it otherwise grows up to 32 MiB after the first large free), so every tensor
# above 128 KiB is its own mapping and leaves the resident set when it is freed: RSS then tracks live
# tensor memory instead of what the heap keeps for reuse. Applied to both paths alike.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: freed memory may stay resident, which only makes the baseline larger


def _build(args, torch, nn, scale: float = 1.0):
    """Hidden states, labels, phrase ids and a frozen LM head for one pair at the requested shape."""
    video = max(1, int(args.video_tokens * scale))
    response = max(2, int(args.response_tokens * scale))
    vocab = max(8, int(args.vocab * scale)) if scale < 1 else args.vocab
    prompt = video + args.text_tokens
    length = prompt + response
    torch.manual_seed(0)  # the head's initialisation: both worker processes must build the same inputs
    generator = torch.Generator().manual_seed(0)
    head = nn.Linear(args.hidden, vocab, bias=False).requires_grad_(False)
    hidden = torch.randn(2, length, args.hidden, generator=generator)
    reference_hidden = hidden + 0.05 * torch.randn(2, length, args.hidden, generator=generator)
    labels = torch.full((2, length), -100, dtype=torch.long)
    labels[:, prompt:] = torch.randint(vocab, (2, response), generator=generator)
    labels[1, -response // 4:] = -100  # the rejected response is shorter: right padding
    phrase_ids = torch.zeros_like(labels)
    phrase_ids[:, prompt + 3: prompt + 9] = 1
    phrase_ids[:, prompt + 20: prompt + 24] = 2
    return head, hidden, reference_hidden, labels, phrase_ids


def _run_path(path: str, head, hidden, reference_hidden, labels, phrase_ids, args, torch):
    from savi_plugin.bench.official_loss import rrpo_loss_from_logits
    from savi_plugin.losses.rrpo import rrpo_loss
    from savi_plugin.training.token_logprobs import response_token_stats

    policy = hidden.clone().requires_grad_()
    if path == "full":
        with torch.no_grad():
            reference_logits = head(reference_hidden)
        losses, _, _ = rrpo_loss_from_logits(head(policy), reference_logits, labels, phrase_ids,
                                             beta=args.beta, alpha=args.alpha)
    else:
        # hidden state t predicts label t + 1: the aligned convention of response_token_stats
        chosen = response_token_stats(policy[:1, :-1], head, labels[:1, 1:],
                                      reference_hidden_states=reference_hidden[:1, :-1], kl="ref||policy",
                                      chunk_size=args.chunk_size)
        rejected = response_token_stats(policy[1:, :-1], head, labels[1:, 1:],
                                        reference_hidden_states=reference_hidden[1:, :-1], chunk_size=args.chunk_size)
        ids = phrase_ids[:, 1:]
        losses = rrpo_loss(chosen.policy_logps, rejected.policy_logps, chosen.reference_logps,
                           rejected.reference_logps, ids[:1], ids[1:], chosen.kl, chosen.mask,
                           beta=args.beta, alpha=args.alpha, rejected_mask=rejected.mask).losses
    loss = losses.sum()
    loss.backward()
    return loss.item(), policy.grad.norm().item()


def worker(args) -> dict:
    """Run one path in this (fresh) process and return its measurements."""
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    # Warm-up on a tiny shape: thread pools and kernel setup are not part of the loss's memory.
    _run_path(args.worker, *_build(args, torch, nn, scale=0.01), args, torch)
    inputs = _build(args, torch, nn)
    _trim_heap()
    baseline_kib = _status_kib("VmRSS")
    exact = _reset_peak()
    start_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    loss, grad_norm = _run_path(args.worker, *inputs, args, torch)
    seconds = time.perf_counter() - start
    peak_kib = _status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"path": args.worker, "peak_extra_mib": (peak_kib - (baseline_kib if exact else start_peak_kib)) / 1024,
            "exact_reset": exact, "seconds": seconds, "loss": loss, "grad_norm": grad_norm}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video-tokens", type=int, default=2000, help="video tokens in the prompt")
    parser.add_argument("--text-tokens", type=int, default=48, help="question / template tokens in the prompt")
    parser.add_argument("--response-tokens", type=int, default=64, help="tokens of the chosen response")
    parser.add_argument("--vocab", type=int, default=32000, help="vocabulary size V")
    parser.add_argument("--hidden", type=int, default=896, help="hidden size H (Qwen2-0.5B: 896)")
    parser.add_argument("--chunk-size", type=int, default=256, help="positions per LM-head call (efficient path)")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads in each worker")
    parser.add_argument("--worker", choices=["full", "efficient"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if not os.path.exists("/proc/self/status"):
        print("this benchmark reads /proc/self/status and needs Linux", file=sys.stderr)
        return 2
    forwarded = list(argv if argv is not None else sys.argv[1:])
    results = {}
    for path in ("efficient", "full"):
        # a fresh interpreter per path: one path's freed memory cannot hide the other's peak
        done = subprocess.run([sys.executable, os.path.abspath(__file__), *forwarded, "--worker", path],
                              check=False, capture_output=True, text=True,
                              env={**os.environ, **WORKER_ENV, "PYTHONPATH": _repo_root()})
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        results[path] = json.loads(done.stdout.strip().splitlines()[-1])

    length = args.video_tokens + args.text_tokens + args.response_tokens
    logits_mib = 2 * length * args.vocab * 4 / MIB
    print(f"RRPO loss, forward + backward, one pair (2 rows x {length} tokens: {args.video_tokens} video + "
          f"{args.text_tokens} text + {args.response_tokens} response), V={args.vocab}, H={args.hidden}, fp32, "
          f"CPU, {args.threads} threads")
    print(f"(for scale: one [2, {length}, {args.vocab}] fp32 logits tensor is {logits_mib:.0f} MiB)")
    for path in ("efficient", "full"):
        r = results[path]
        how = "VmHWM reset" if r["exact_reset"] else "ru_maxrss, whole process (peak not resettable)"
        print(f"  {path:>9}: peak extra memory {r['peak_extra_mib']:8.1f} MiB   time {r['seconds']:6.2f} s   "
              f"loss {r['loss']:.6f}   [{how}]")
    ratio = results["full"]["peak_extra_mib"] / max(results["efficient"]["peak_extra_mib"], 1e-9)
    print(f"  ratio full / efficient: {ratio:.1f}x   (chunk size {args.chunk_size})")
    difference = abs(results["full"]["loss"] - results["efficient"]["loss"])
    print(f"  |loss difference|: {difference:.2e}  "
          f"|grad-norm difference|: {abs(results['full']['grad_norm'] - results['efficient']['grad_norm']):.2e}")
    return 0


def _repo_root() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    existing = os.environ.get("PYTHONPATH")
    return root if not existing else root + os.pathsep + existing


if __name__ == "__main__":
    sys.exit(main())
