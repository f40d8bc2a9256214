"""Training-step time and peak memory: our trainer against an official-style RRPO step, same pair, same loss.

    savi bench train-step                     # 16 frames x 100 tokens = 1,601 video tokens, 48-token responses
    python benchmarks/train_step.py --layers 16 --vocab 8192 --steps 3

One RRPO preference pair on a long video, one optimizer step at a time, on a tiny-but-deep LLaVA-OneVision
(random weights, built locally; see :class:`~savi_plugin.bench.fixtures.ModelShape`):

* **ours**: :class:`~savi_plugin.training.trainer.PreferenceTrainer` (``loss_type="rrpo"``) run by its own
  ``train()`` loop on a one-pair dataset: shared-prefix packing ``[video+question | chosen | rejected]`` with
  its attention as two causal kernel calls (:mod:`savi_plugin.training.packing`), the vision encoder
  once per pair, the reference as the adapter-disabled policy under
  ``no_grad`` on the same packed row, the LM head on response positions only;
* **baseline**: :class:`~savi_plugin.bench.official_rrpo.OfficialStyleRRPO`, what the official code does
  (chosen and rejected as separate full forwards, a separate frozen reference copy, the vision encoder per
  sequence -- four times per pair -- and full-vocabulary logits at every position).

Both start from the same checkpoint and the same LoRA adapter (non-zero ``B``, so the policy differs from
the reference at step one), use fp32, AdamW at a constant learning rate, clipping at 1.0 and the same
gradient-checkpointing setting, and must compute the same loss: the first-step losses are compared (and
the run fails if they differ by more than ``--loss-tolerance``).

Timing: a step is forward + backward + clipping + optimizer step, data preparation excluded on both sides
(the Trainer fetches and collates the batch before ``on_step_begin``; the baseline's pair is encoded once up
front). ``--warmup`` steps are run first; the median of ``--steps`` steps is reported.

Memory: each side runs in a fresh process, and after the timed steps one more step is run with glibc's mmap
threshold pinned so that the resident set tracks live tensors (:mod:`savi_plugin.bench.measure` explains why
timing and memory are taken in separate steps). ``step peak`` is the largest extra resident memory during that
step over the resident set at its start (activations, logits, gradients, temporaries); ``process peak`` is the
largest resident set during it minus the resident set after imports, before any model was loaded (so it also
counts the weights -- the baseline's second model copy -- optimizer state and gradients).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from savi_plugin.bench.fixtures import ModelShape, model_line, video_tokens, work_folder
from savi_plugin.bench.measure import (MemoryProbe, report_output, StepTimer, VisionCounter, forward_args, machine_note,
                                      finish, measure_sides, ratio, require_linux)
from savi_plugin.bench.options import IMAGE_SIZE, PairStepShape, add_options, check_bench_resources, check_pair_step
from savi_plugin.config.values import AtLeast, NonNegative, OneOf, Positive, checked
from savi_plugin.data.outputs import write_json, write_jsonl
from savi_plugin.data.paths import path_for_file

SIDES = ("ours", "baseline")


def _shape(args) -> ModelShape:
    return ModelShape(hidden_size=args.hidden, num_layers=args.layers, intermediate_size=args.intermediate or None,
                      image_size=args.image_size, vocab_size=args.vocab or None,
                      vision_hidden_size=args.vision_hidden or None, vision_layers=args.vision_layers or None,
                      seed=args.seed)


def prepare(args) -> dict:
    """Build (or reuse) the model, video, LoRA adapter and one-pair preference file under ``args.work_dir``."""
    from savi_plugin.bench.fixtures import build_bench_model, make_adapter, make_tagged_pair, make_video
    from savi_plugin.models.tiny import build_tokenizer

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model = build_bench_model(work, _shape(args))
    video, question = make_video(work, num_frames=args.frames, size=args.image_size, seed=args.seed)
    adapter = make_adapter(work, model, rank=args.lora_rank, alpha=2 * args.lora_rank, init_std=args.lora_init_std,
                           seed=args.seed)
    pair = make_tagged_pair(build_tokenizer(), args.response_tokens)
    data = work / f"pair_r{args.response_tokens}.jsonl"
    record = {"id": "bench-0", "video": path_for_file(video, data), "question": question, "source": "bench", **pair}
    write_jsonl(data, [record])
    return {"model": str(model), "adapter": str(adapter), "data": str(data), "video": str(video),
            "question": question, "pair": pair, "segments": _segments(model, video, question, pair, args.frames)}


def _segments(model, video, question: str, pair: dict, frames: int) -> list[int]:
    """``[prefix, chosen, rejected]`` token counts of the packed row (processor only; no weights loaded)."""
    from transformers import AutoProcessor

    from savi_plugin.models.backends.llava_onevision import LlavaOnevisionVideoLM
    from savi_plugin.video import read_frames

    video_lm = LlavaOnevisionVideoLM(None, AutoProcessor.from_pretrained(str(model)), num_frames=frames)
    prefix = video_lm.encode([read_frames(video, frames).frames], [question])["input_ids"].shape[1]
    return [prefix] + [len(video_lm.response_tokens(pair[k])[0]) for k in ("chosen", "rejected")]


# ----------------------------------------------------------------------------------------------- workers
def _worker_ours(args, paths: dict, probe: MemoryProbe, base_mib: float) -> dict:
    from savi_plugin.bench.ours import train_ours

    return train_ours(model_path=paths["model"], adapter_path=paths["adapter"], data_path=paths["data"],
                      output_dir=Path(args.work_dir) / "ours_out", loss_type="rrpo", beta=args.beta, alpha=args.alpha,
                      lr=args.lr, warmup=args.warmup, steps=args.steps, frames=args.frames,
                      gradient_checkpointing=args.gradient_checkpointing, seed=args.seed, probe=probe,
                      base_mib=base_mib, phase=args.phase)


def _worker_baseline(args, paths: dict, probe: MemoryProbe, base_mib: float) -> dict:
    import torch

    from savi_plugin.bench.official_rrpo import OfficialStyleRRPO, encode_pair
    from savi_plugin.models.backends.llava_onevision import LlavaOnevisionVideoLM
    from savi_plugin.video import read_frames

    torch.manual_seed(args.seed)
    video_lm = LlavaOnevisionVideoLM.from_pretrained(paths["model"], num_frames=args.frames)  # for its processor
    batch = encode_pair(video_lm, read_frames(paths["video"], args.frames).frames, paths["question"], paths["pair"])
    del video_lm
    trainer = OfficialStyleRRPO(paths["model"], paths["adapter"], lr=args.lr, beta=args.beta, alpha=args.alpha,
                                gradient_checkpointing=args.gradient_checkpointing)
    vision = VisionCounter(trainer.policy.get_base_model().model.vision_tower, trainer.reference.model.vision_tower)
    timer = StepTimer(probe, warmup=args.warmup, steps=args.steps, phase=args.phase)
    losses = []
    for _ in range(timer.total_steps):
        timer.begin()
        losses.append(trainer.step(batch))
        timer.end()
    steps = len(losses)
    return {"losses": losses, **timer.summary(base_mib), "packing": False,
            "vision_per_pair": vision.per_pair(steps, args.frames)}


def worker(args) -> dict:
    """Run one side in this (fresh) process and return its measurements."""
    import torch

    torch.set_num_threads(args.threads)
    probe = MemoryProbe()
    # Import everything both sides import before the memory base line, so it is the same for both.
    import peft  # noqa: F401
    import transformers  # noqa: F401

    from savi_plugin.training import trainer as _  # noqa: F401

    base_mib = probe.rss_mib()
    paths = json.loads(Path(args.work_dir, "paths.json").read_text())
    run = _worker_ours if args.worker == "ours" else _worker_baseline
    return {"side": args.worker, "base_mib": base_mib, **run(args, paths, probe, base_mib)}


# ----------------------------------------------------------------------------------------------- driver
def run(args) -> dict:
    """Prepare the inputs, run both sides in fresh processes, print the comparison; returns the results."""
    require_linux()
    with work_folder(args.work_dir, "train_step") as work:
        args.work_dir = str(work)  # forwarded to each side's process
        load_before = machine_note()
        paths = prepare(args)
        write_json(Path(args.work_dir, "paths.json"), paths)
        forwarded = forward_args(build_parser(), args, drop=("worker", "phase", "repeats"))
        results = measure_sides("savi_plugin.bench.train_step", forwarded, SIDES, repeats=args.repeats)
        report = summarize(args, paths, results)
        if args.attention_probe:
            report["attention"] = _attention_probe(args, paths["segments"])
        report["machine"] = {"before": load_before, "after": machine_note()}
        print_report(args, report)
        return report


def _attention_probe(args, segments: list[int]) -> dict:
    import torch

    from savi_plugin.bench.attention import attention_costs

    torch.set_num_threads(args.threads)
    return attention_costs(*segments, hidden=args.hidden, heads=4)  # the tiny Qwen2 has 4 attention heads


def summarize(args, paths: dict, results: dict) -> dict:
    ours, base = results["ours"], results["baseline"]
    first = abs(ours["losses"][0] - base["losses"][0])
    steps = min(len(ours["losses"]), len(base["losses"]))
    return {
        "results": results, "shape": asdict(_shape(args)), "video_tokens": video_tokens(args.frames, args.image_size),
        "first_step_loss": {"ours": ours["losses"][0], "baseline": base["losses"][0], "abs_diff": first},
        "max_loss_diff": max(abs(a - b) for a, b in zip(ours["losses"][:steps], base["losses"][:steps])),
        "losses_equal": first <= args.loss_tolerance,
        "throughput_ratio": ratio(base["median_step_s"], ours["median_step_s"]),
        "step_memory_ratio": ratio(base["step_peak_mib"], ours["step_peak_mib"]),
        "process_memory_ratio": ratio(base["process_peak_mib"], ours["process_peak_mib"]),
    }


def print_report(args, report: dict) -> None:
    ours, base = report["results"]["ours"], report["results"]["baseline"]
    shape = report["shape"]
    print(f"RRPO training step, one pair: {args.frames} frames x {args.image_size}px = {report['video_tokens']} video "
          f"tokens, ~{args.response_tokens}-token responses; {model_line(shape)}; LoRA r={args.lora_rank}; fp32, "
          f"CPU, {args.threads} threads, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}")
    print(f"  {'':>9}  {'step (median)':>13}  {'pairs/s':>8}  {'step peak':>10}  {'process peak':>12}  "
          f"{'vision/pair':>11}  first-step loss")
    for name, r in (("ours", ours), ("baseline", base)):
        print(f"  {name:>9}  {r['median_step_s']:11.2f} s  {1 / r['median_step_s']:8.3f}  "
              f"{r['step_peak_mib']:6.0f} MiB  "
              f"{r['process_peak_mib']:8.0f} MiB  {r['vision_per_pair']:11.1f}  {r['losses'][0]:.6f}")
    loss = report["first_step_loss"]
    if args.repeats > 1:
        print("  time runs (median s/step each; fastest kept): " + "   ".join(
            f"{name} " + " ".join(f"{t:.2f}" for t in r["time_runs"])
            for name, r in (("ours", ours), ("baseline", base))))
    print(f"  throughput ours/baseline: {report['throughput_ratio']:.2f}x   step peak memory baseline/ours: "
          f"{report['step_memory_ratio']:.2f}x   process peak baseline/ours: {report['process_memory_ratio']:.2f}x")
    print(f"  |first-step loss difference|: {loss['abs_diff']:.2e} (tolerance {args.loss_tolerance:g})   "
          f"max over {min(len(ours['losses']), len(base['losses']))} steps: {report['max_loss_diff']:.2e}   "
          f"packing: {ours['packing']}")
    if "attention" in report:
        a = report["attention"]
        print(f"  one attention layer (forward + backward): packed row as the trainer computes it (two causal "
              f"calls) {a['split'] * 1e3:.0f} ms, the same row with a dense block mask {a['block_mask'] * 1e3:.0f} ms "
              f"(max |output difference| {a['max_abs_diff_split']:.1e}), the baseline's two causal rows "
              f"{a['two_causal_rows'] * 1e3:.0f} ms")
    print(f"  machine: {report['machine']['before']} at start, {report['machine']['after'].split(', ')[-1]} at end")
    if not (ours["exact_reset"] and base["exact_reset"]):
        print("  note: the kernel's peak counter could not be reset; peaks are whole-process upper bounds")


@dataclass(frozen=True)
class TrainStepOptions(PairStepShape):
    """The options of ``savi bench train-step`` (one flag each, :mod:`savi_plugin.bench.options`); ``worker`` and
    ``phase`` are the hidden flags of the worker processes (:func:`~savi_plugin.bench.measure.measure_sides`)."""

    frames: int = checked(16, AtLeast(1), help="frames per video")
    image_size: int = checked(160, *IMAGE_SIZE,
                              help="frame size; ceil(size/16)^2 tokens per frame (160: 100, 176: 121)")
    lora_init_std: float = checked(0.02, NonNegative(), help="std of the adapter's initial B")
    beta: float = checked(0.1, Positive())
    alpha: float = checked(0.01, NonNegative())
    lr: float = checked(1e-4, Positive())
    gradient_checkpointing: bool = checked(True, help="recompute decoder layers in backward, both sides (the "
                                                      "official recipe does)")
    attention_probe: bool = checked(True, help="also time one attention layer in each layout (split, block mask, "
                                               "two rows)")
    loss_tolerance: float = checked(1e-4, NonNegative(), help="max |first-step loss difference|")
    work_dir: str | None = checked(None, help="where inputs are built and cached (default: a temporary folder)")
    json: str | None = checked(None, help="also write the results to this file")
    worker: str | None = checked(None, OneOf(*SIDES), help=argparse.SUPPRESS)
    phase: str = checked("time", OneOf("time", "memory"), help=argparse.SUPPRESS)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The parser of :class:`TrainStepOptions` (added to ``parser`` when given)."""
    return add_options(parser or argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), TrainStepOptions)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_pair_step(parser, args)
    check_bench_resources(parser, args)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    with report_output(args.json, args.work_dir) as output:
        report = run(args)
        return finish(report, output, report["losses_equal"],
                      f"the two sides computed different losses (|difference| {report['first_step_loss']['abs_diff']:.2e}"
                      f" > {args.loss_tolerance:g}); the comparison is not valid")


if __name__ == "__main__":
    raise SystemExit(main())
