"""Per-pair DPO step time: our trainer against TRL's ``DPOTrainer``, on the same tiny LLaVA-OneVision, at equal loss.

    savi bench trl                 # needs trl (pip install "savi-plugin[bench]"); 8 frames x 121 = 969 video tokens
    python benchmarks/trl_dpo.py --steps 4 --no-image-row

Three runs of the same DPO training (sigmoid loss, beta 0.1, LoRA on the language model, reference = the
policy with its adapter disabled, fp32, AdamW at a constant learning rate, clipping at 1.0, one pair per step),
each in a fresh process:

* ``ours``: :class:`~savi_plugin.training.trainer.PreferenceTrainer` (``loss_type="dpo"``) on a video pair:
  one packed row ``[video+question | chosen | rejected]``, the vision encoder once per pair;
* ``trl video``: TRL's ``DPOTrainer`` on **the same video pair, token for token**. TRL has no video path
  (research/peers.md, section C): its vision collator only passes images to the processor. Only the
  collator is replaced (:class:`TRLVideoCollator`): it emits TRL's own batch layout -- rows
  ``[prompt | chosen]`` and ``[prompt | rejected]``, ``completion_mask``, the visual input repeated for both
  rows, exactly as ``DataCollatorForVisionPreference`` does for images -- with ``pixel_values_videos``.
  Everything else (the two-row forward, the vision tower per row, the adapter-disabled reference forward,
  TRL's fused response-only LM head, the loss, the optimizer loop) is TRL's. Same model inputs, same weights,
  same reference: the losses must be equal, and the run fails if they are not;
* ``trl image`` (``--image-row``, on by default): TRL's stock image path (``DataCollatorForVisionPreference``)
  on one frame of the video as an image of the same size: the anyres base image + one tile gives
  (s/8)^2 + (s/8)(s/8+1) = 990 visual tokens at 176 px, close to the video's 969, so its time shows that the
  collator swap does not slow TRL down. Its inputs differ from the video's, so its loss is not compared.

Equal loss: with a new adapter (``B = 0``, what TRL creates from ``peft_config``) the policy equals the
reference at step one, so every DPO implementation logs ``log 2`` there; that alone proves nothing. The check
therefore compares every step's loss (from step two on they depend on the gradients and the optimizer), and
the first step's policy log-probabilities (``logps/chosen``, ``logps/rejected``) and gradient norm.

Timing: forward + backward + clipping + optimizer step per pair, measured between the Trainer's
``on_step_begin`` and ``on_step_end`` (collation excluded on every side); median over ``--steps`` after
``--warmup`` steps. ``--memory`` adds a peak-memory column (one more fresh process per side, see
:mod:`savi_plugin.bench.measure`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from savi_plugin.bench.fixtures import ModelShape, model_line, video_tokens, work_folder
from savi_plugin.bench.measure import (MemoryProbe, report_output, StepTimer, VisionCounter, forward_args, log_recorder,
                                      finish, machine_note, measure_sides, ratio, require_linux)
from savi_plugin.bench.options import IMAGE_SIZE, PairStepShape, add_options, check_bench_resources, check_pair_step
from savi_plugin.config.values import AtLeast, NonNegative, OneOf, Positive, checked
from savi_plugin.data.outputs import write_json, write_jsonl
from savi_plugin.data.paths import path_for_file

SIDES = ("ours", "trl_video", "trl_image")
LABELS = {"ours": "ours", "trl_video": "TRL video", "trl_image": "TRL image"}


def trl_version() -> str | None:
    """The installed TRL version, or None when TRL is not installed."""
    try:
        import trl
    except ImportError:
        return None
    return trl.__version__


def _shape(args) -> ModelShape:
    return ModelShape(hidden_size=args.hidden, num_layers=args.layers, intermediate_size=args.intermediate or None,
                      image_size=args.image_size, vocab_size=args.vocab or None,
                      vision_hidden_size=args.vision_hidden or None, vision_layers=args.vision_layers or None,
                      seed=args.seed)


def prepare(args) -> dict:
    """Build (or reuse) the model, video, image, fresh LoRA adapter and one-pair file under ``args.work_dir``."""
    from PIL import Image

    from savi_plugin.bench.fixtures import build_bench_model, make_adapter, make_tagged_pair, make_video
    from savi_plugin.models.tiny import build_tokenizer
    from savi_plugin.video import read_frames

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model = build_bench_model(work, _shape(args))
    video, question = make_video(work, num_frames=args.frames, size=args.image_size, seed=args.seed)
    adapter = make_adapter(work, model, rank=args.lora_rank, alpha=2 * args.lora_rank, init_std=0.0, seed=args.seed)
    frames = read_frames(video, args.frames).frames
    image = work / f"frame_{args.image_size}px.png"
    Image.fromarray(frames[len(frames) // 2]).save(image)
    pair = make_tagged_pair(build_tokenizer(), args.response_tokens)
    data = work / f"dpo_pair_r{args.response_tokens}.jsonl"
    record = {"id": "bench-0", "video": path_for_file(video, data), "question": question, "source": "bench",
              "chosen": pair["chosen"], "rejected": pair["rejected"]}
    write_jsonl(data, [record])
    return {"model": str(model), "adapter": str(adapter), "data": str(data), "video": str(video), "image": str(image),
            "question": question, "chosen": pair["chosen"], "rejected": pair["rejected"]}


class TRLVideoCollator:
    """TRL's preference batch layout (as ``DataCollatorForVisionPreference`` builds it), with video inputs.

    Rows ``0..B-1`` are ``[prompt | chosen]``, rows ``B..2B-1`` ``[prompt | rejected]``, right-padded;
    ``completion_mask`` marks the response tokens; ``pixel_values_videos`` is repeated for the two halves, as
    TRL repeats ``images``. Prompts and responses are tokenized exactly as our collator does (the backend's
    chat prompt with the expanded video placeholder; ``response + end_of_turn`` on its own), so both trainers
    see identical tokens.

    Args:
        video_lm: a :class:`~savi_plugin.models.backends.base.VideoLM` (for its processor and prompt format).
        num_frames: frames decoded per video (``read_frames``, uniform).
    """

    def __init__(self, video_lm, num_frames: int):
        self.video_lm = video_lm
        self.num_frames = num_frames

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        from savi_plugin.models.backends.tokens import pad_stack
        from savi_plugin.video import read_frames

        video_lm, tokenizer = self.video_lm, self.video_lm.tokenizer
        videos = [read_frames(ex["video"], self.num_frames).frames for ex in examples]
        prompts = video_lm.encode(videos, [ex["question"] for ex in examples])
        mask = prompts["attention_mask"].bool()
        prompt_rows = [prompts["input_ids"][i][mask[i]].tolist() for i in range(len(examples))]
        rows, completion = [], []
        for key in ("chosen", "rejected"):
            for prompt, ex in zip(prompt_rows, examples):
                response = video_lm.response_tokens(ex[key])[0]
                rows.append(prompt + response)
                completion.append([0] * len(prompt) + [1] * len(response))
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        pixels = prompts["pixel_values_videos"]
        return {"input_ids": pad_stack(rows, pad_id), "attention_mask": pad_stack([[1] * len(r) for r in rows], 0),
                "completion_mask": pad_stack(completion, 0), "pixel_values_videos": torch.cat([pixels, pixels])}


def _worker_trl(args, paths: dict, probe: MemoryProbe, base_mib: float, *, video: bool) -> dict:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer

    from savi_plugin.bench.fixtures import lora_config

    losses: list[float] = []

    class Recording(DPOTrainer):
        """TRL's trainer unchanged, except that each step's loss is also kept here at full precision."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            losses.append(float((loss[0] if return_outputs else loss).detach()))
            return loss

    import datasets

    processor = AutoProcessor.from_pretrained(paths["model"])
    model = AutoModelForImageTextToText.from_pretrained(paths["model"], dtype=torch.float32)
    if video:
        from savi_plugin.models.backends.llava_onevision import LlavaOnevisionVideoLM

        # TRL treats a dataset with an image key as a vision dataset: it then skips its up-front text tokenization
        # and leaves all preprocessing to the collator, which is what a video pair needs. The key stays empty.
        dataset = datasets.Dataset.from_list([{"images": [], "video": paths["video"], "question": paths["question"],
                                               "chosen": paths["chosen"], "rejected": paths["rejected"]}])
        collator = TRLVideoCollator(LlavaOnevisionVideoLM(model, processor, num_frames=args.frames), args.frames)
    else:
        from PIL import Image

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": paths["question"]}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        end = "<|im_end|>"  # our backends append the end-of-turn token to each response; TRL scores what it is given
        dataset = datasets.Dataset.from_list([{"images": [Image.open(paths["image"]).convert("RGB")], "prompt": prompt,
                                               "chosen": paths["chosen"] + end, "rejected": paths["rejected"] + end}])
        collator = None  # TRL's DataCollatorForVisionPreference
    timer, logs = StepTimer(probe, warmup=args.warmup, steps=args.steps, phase=args.phase), []
    config = DPOConfig(
        output_dir=str(Path(args.work_dir) / ("trl_video_out" if video else "trl_image_out")), loss_type=["sigmoid"],
        beta=args.beta, learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch", per_device_train_batch_size=1, max_steps=timer.total_steps,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if args.gradient_checkpointing else None,
        bf16=False, max_length=None, save_strategy="no", logging_steps=1, use_cpu=True, seed=args.seed,
        report_to="none", dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=False)
    trainer = Recording(model=model, args=config, train_dataset=dataset, processing_class=processor,
                        peft_config=lora_config(args.lora_rank, 2 * args.lora_rank), data_collator=collator,
                        callbacks=[timer.callback(), log_recorder(logs)])
    # Start from the very adapter our side loads (peft's A draw, B = 0), not from a second random draw.
    weights = load_file(str(Path(paths["adapter"]) / "adapter_model.safetensors"))
    loaded = set_peft_model_state_dict(trainer.model, weights)
    if loaded.unexpected_keys:
        raise RuntimeError(f"adapter weights did not match TRL's LoRA modules: {loaded.unexpected_keys[:3]}")
    vision = VisionCounter(trainer.model.get_base_model().model.vision_tower)
    trainer.train()
    # a video is `frames` vision-tower images; an anyres image is its base view plus tiles (2 at this size)
    per_input = args.frames if video else int(trainer.data_collator([dataset[0]])["pixel_values"].shape[1])
    return {"losses": losses, "logs": [entry for entry in logs if "loss" in entry], **timer.summary(base_mib),
            "packing": False, "vision_per_pair": vision.per_pair(len(losses), per_input), "trl": trl_version()}


def _worker_ours(args, paths: dict, probe: MemoryProbe, base_mib: float) -> dict:
    from savi_plugin.bench.ours import train_ours

    return train_ours(model_path=paths["model"], adapter_path=paths["adapter"], data_path=paths["data"],
                      output_dir=Path(args.work_dir) / "ours_dpo_out", loss_type="dpo", beta=args.beta, alpha=0.0,
                      lr=args.lr, warmup=args.warmup, steps=args.steps, frames=args.frames,
                      gradient_checkpointing=args.gradient_checkpointing, seed=args.seed, probe=probe,
                      base_mib=base_mib, phase=args.phase)


def worker(args) -> dict:
    """Run one side in this (fresh) process and return its measurements."""
    import torch

    torch.set_num_threads(args.threads)
    probe = MemoryProbe()
    import peft  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from savi_plugin.training import trainer as _  # noqa: F401

    base_mib = probe.rss_mib()
    paths = json.loads(Path(args.work_dir, "trl_paths.json").read_text())
    if args.worker == "ours":
        out = _worker_ours(args, paths, probe, base_mib)
    else:
        out = _worker_trl(args, paths, probe, base_mib, video=args.worker == "trl_video")
    return {"side": args.worker, "base_mib": base_mib, **out}


# ----------------------------------------------------------------------------------------------- driver
def _first_log(result: dict, key: str) -> float:
    return float(result["logs"][0][key]) if result["logs"] and key in result["logs"][0] else float("nan")


def summarize(args, results: dict) -> dict:
    ours, trl_video = results["ours"], results["trl_video"]
    steps = min(len(ours["losses"]), len(trl_video["losses"]))
    loss_diffs = [abs(a - b) for a, b in zip(ours["losses"][:steps], trl_video["losses"][:steps])]
    checks = {key: {"ours": _first_log(ours, key), "trl_video": _first_log(trl_video, key)}
              for key in ("logps/chosen", "logps/rejected", "grad_norm")}
    for pair in checks.values():
        pair["rel_diff"] = abs(pair["ours"] - pair["trl_video"]) / max(abs(pair["trl_video"]), 1e-12)
    report = {
        "results": results, "shape": asdict(_shape(args)), "trl": trl_video.get("trl"),
        "loss_diffs": loss_diffs, "max_loss_diff": max(loss_diffs), "first_step_checks": checks,
        "losses_equal": max(loss_diffs) <= args.loss_tolerance
        and all(c["rel_diff"] <= args.rel_tolerance for c in checks.values()),
        "speedup_vs_trl_video": ratio(trl_video["median_step_s"], ours["median_step_s"]),
    }
    if "trl_image" in results:
        report["speedup_vs_trl_image"] = ratio(results["trl_image"]["median_step_s"], ours["median_step_s"])
    return report


def _mib(value) -> str:
    return f"{value:6.0f} MiB" if value is not None else f"{'-':>10}"


def print_report(args, report: dict) -> None:
    results, shape = report["results"], report["shape"]
    tokens = video_tokens(args.frames, args.image_size)
    print(f"DPO step per pair vs TRL {report['trl']} DPOTrainer: {args.frames} frames x {args.image_size}px = {tokens} "
          f"video tokens, ~{args.response_tokens}-token responses; {model_line(shape)}; LoRA r={args.lora_rank}; fp32, "
          f"CPU, {args.threads} threads, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}")
    print(f"  {'':>10}  {'s/pair (median)':>15}  {'pairs/s':>8}  {'step peak':>10}  {'vision/pair':>11}  "
          f"losses per step")
    for side in SIDES:
        if side not in results:
            continue
        r = results[side]
        losses = " ".join(f"{x:.6f}" for x in r["losses"])
        print(f"  {LABELS[side]:>10}  {r['median_step_s']:13.2f} s  {1 / r['median_step_s']:8.3f}  "
              f"{_mib(r.get('step_peak_mib'))}  {r['vision_per_pair']:11.1f}  {losses}")
    if args.repeats > 1:
        print("  time runs (median s/pair each; fastest kept): " + "   ".join(
            f"{LABELS[side]} " + " ".join(f"{t:.2f}" for t in results[side]["time_runs"]) for side in results))
    line = f"  speed-up per pair, ours vs TRL on the same video pair: {report['speedup_vs_trl_video']:.2f}x"
    if "speedup_vs_trl_image" in report:
        line += f"   (vs TRL's stock image path, 990 visual tokens: {report['speedup_vs_trl_image']:.2f}x)"
    print(line)
    checks = report["first_step_checks"]
    print(f"  equal loss (ours vs TRL video): max |loss difference| over {len(report['loss_diffs'])} steps "
          f"{report['max_loss_diff']:.2e} (tolerance {args.loss_tolerance:g}); step-1 relative differences: "
          + ", ".join(f"{k} {v['rel_diff']:.1e}" for k, v in checks.items()))
    print(f"  machine: {report['machine']['before']} at start, {report['machine']['after'].split(', ')[-1]} at end")


def run(args) -> dict:
    """Prepare the inputs, run every side in a fresh process, print the comparison; returns the results."""
    require_linux()
    if trl_version() is None:
        raise SystemExit("this benchmark needs TRL: pip install trl (or pip install 'savi-plugin[bench]')")
    with work_folder(args.work_dir, "trl") as work:
        args.work_dir = str(work)  # forwarded to each side's process
        load_before = machine_note()
        paths = prepare(args)
        write_json(Path(args.work_dir, "trl_paths.json"), paths)
        sides = [s for s in SIDES if s != "trl_image" or args.image_row]
        forwarded = forward_args(build_parser(), args, drop=("worker", "phase", "repeats"))
        results = measure_sides("savi_plugin.bench.trl_dpo", forwarded, sides, repeats=args.repeats, memory=args.memory)
        report = summarize(args, results)
        report["machine"] = {"before": load_before, "after": machine_note()}
        print_report(args, report)
        return report


@dataclass(frozen=True)
class TRLOptions(PairStepShape):
    """The options of ``savi bench trl`` (one flag each, :mod:`savi_plugin.bench.options`); ``worker`` and
    ``phase`` are the hidden flags of the worker processes (:func:`~savi_plugin.bench.measure.measure_sides`)."""

    frames: int = checked(8, AtLeast(1), help="frames per video")
    image_size: int = checked(176, *IMAGE_SIZE, help="frame / image size in pixels")
    beta: float = checked(0.1, Positive())
    lr: float = checked(1e-4, Positive())
    gradient_checkpointing: bool = checked(True, help="recompute decoder layers in backward, every side (TRL's "
                                                      "default)")
    image_row: bool = checked(True, help="also time TRL's stock image path")
    loss_tolerance: float = checked(1e-4, NonNegative(), help="max |loss difference| at any step")
    rel_tolerance: float = checked(1e-3, NonNegative(), help="max relative difference of step-1 log-probs and "
                                                             "gradient norm")
    work_dir: str | None = checked(None, help="where inputs are built and cached (default: a temporary folder)")
    json: str | None = checked(None, help="also write the results to this file")
    memory: bool = checked(False, help="also measure each side's peak memory (one more fresh process per side)")
    worker: str | None = checked(None, OneOf(*SIDES), help=argparse.SUPPRESS)
    phase: str = checked("time", OneOf("time", "memory"), help=argparse.SUPPRESS)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The parser of :class:`TRLOptions` (added to ``parser`` when given)."""
    return add_options(parser or argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), TRLOptions)


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
                      "ours and TRL computed different losses on the same pair; the comparison is not valid")


if __name__ == "__main__":
    raise SystemExit(main())
