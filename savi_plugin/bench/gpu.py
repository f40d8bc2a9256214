"""``savi bench gpu``: the first check on a GPU, at the real 7B shapes with random weights, in one process.

    savi bench gpu                      # on one GPU (H200: a few minutes); bf16, random weights
    savi bench gpu --scale small        # the same code at a tiny shape (runs on CPU; what the test runs)

Prints, in one run:

1. **Training step at LLaVA-Video-7B's shape** (Qwen2-7B language model, SigLIP-so400m tower, 384-px frames,
   16 frames x 210 tokens = 3,360 video tokens, LLaVA-Video's newline per pooled row), bf16, LoRA r=128 on every
   language-model linear layer, gradient checkpointing, one RRPO pair with ~48-token responses: seconds per step,
   pairs/s and peak GPU memory (``torch.cuda.max_memory_allocated`` over the timed steps) for **ours**
   (:class:`~savi_plugin.training.trainer.PreferenceTrainer`: packed row with split attention, vision once,
   adapter-disabled reference) and the **official-style** step
   (:class:`~savi_plugin.bench.official_rrpo.OfficialStyleRRPO`: two full forwards per model, a second frozen
   model copy, the vision tower four times, full-vocabulary logits), with their first-step losses.
2. **VideoSAVi generation at LLaVA-OneVision-7B's shape** (same model sizes, 32 frames x 196 tokens + one
   newline = 6,273 video tokens): pairs/s with and without the video prefix reused
   (:mod:`savi_plugin.bench.generation`'s workload), greedy outputs compared token by token
   (:data:`TOKEN_AGREEMENT`: exact in float32, 90% of token positions in bf16/fp16, ``--min-token-agreement``).

Every clock reading is taken after ``torch.cuda.synchronize``; the side measured first is freed (garbage
collected, cache emptied, peak reset) before the second, so the official side's peak excludes our trainer's
optimizer state; ``--device cuda:N`` makes that GPU the only visible one before CUDA starts.

The weights are random (initialised on the device, nothing is downloaded or written); the processor and
tokenizer come from a tiny converted LLaVA-Video checkpoint built on the spot, whose geometry (384 px, 14-px
patches, 2x2 pooling) is the real one. Both training sides start from the same weights and adapter.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from savi_plugin.bench.measure import finish, report_output
from savi_plugin.bench.options import add_options, listed
from savi_plugin.config.values import AtLeast, NonNegative, OneOf, Probability, checked
from savi_plugin.device import UsableDevice, device_problem
from savi_plugin.data.outputs import write_jsonl
from savi_plugin.data.paths import path_for_file

#: Qwen2-7B (text) and SigLIP-so400m with LLaVA-NeXT's last layer removed (vision): LLaVA-Video-7B-Qwen2's sizes.
FULL = {"text": {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                 "intermediate_size": 18944, "vocab_size": 152064},
        "vision": {"hidden_size": 1152, "num_hidden_layers": 26, "num_attention_heads": 16, "intermediate_size": 4304},
        "train_frames": 16, "generate_frames": 32, "lora_rank": 128, "videos": 2, "max_new_tokens": 256}
#: The tiny converted checkpoint's own sizes, a little less of everything (for the CPU test).
SMALL = {"text": {}, "vision": {}, "train_frames": 2, "generate_frames": 2, "lora_rank": 8, "videos": 1,
         "max_new_tokens": 4}


class _Timer:
    """Per-step seconds (device-synchronised) and the peak device memory after ``warmup`` steps."""

    def __init__(self, device, warmup: int, steps: int):
        import torch

        self.device, self.warmup, self.steps = device, warmup, steps
        self.total_steps = warmup + steps
        self.times: list[float] = []
        self._cuda = torch.device(device).type == "cuda"
        self._start = 0.0

    def _sync(self):
        import torch

        if self._cuda:
            torch.cuda.synchronize(self.device)

    def begin(self):
        import torch

        self._sync()
        if self._cuda and len(self.times) == self.warmup:
            torch.cuda.reset_peak_memory_stats(self.device)
        self._start = time.perf_counter()

    def end(self):
        self._sync()
        self.times.append(time.perf_counter() - self._start)

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer.begin()

            def on_step_end(self, args, state, control, **kwargs):
                timer.end()

        return Callback()

    def summary(self, base_mib: float = 0.0) -> dict:
        import torch

        from savi_plugin.bench.measure import median

        timed = self.times[self.warmup:]
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self._cuda else None
        return {"step_times_s": timed, "median_step_s": median(timed), "peak_mib": peak}


def build_checkpoint(work: Path) -> Path:
    """A tiny converted LLaVA-Video checkpoint (processor, tokenizer, config at the real 384-px geometry)."""
    from savi_plugin.models.llava_next.convert import convert_llava_next
    from savi_plugin.models.llava_next.tiny import build_tiny_llava_next

    out = work / "llava_video"
    if not (out / "config.json").exists():
        source = build_tiny_llava_next(str(work / "llava_next_source"))
        convert_llava_next(source, str(out), vision_config=str(Path(source) / "siglip_vision_config.json"),
                           inside=work)  # the benchmark's own work folder, marked by savi bench
    return out


def scaled_config(checkpoint: Path, scale: dict, newline: str):
    """The tiny checkpoint's ``LlavaVideoConfig`` with ``scale``'s sizes and newline layout, on sdpa attention."""
    from savi_plugin.models.llava_next.auto import register_auto_classes
    from savi_plugin.models.llava_next.modeling import LlavaVideoConfig

    register_auto_classes()
    config = LlavaVideoConfig.from_pretrained(str(checkpoint))
    text = config.text_config
    for key, value in scale["text"].items():
        setattr(text, key, value)
    if getattr(text, "layer_types", None) is not None:  # one entry per layer
        text.layer_types = ["full_attention"] * text.num_hidden_layers
        text.max_window_layers = text.num_hidden_layers
    for key, value in scale["vision"].items():
        setattr(config.vision_config, key, value)
    config.newline_position = newline
    text._attn_implementation = "sdpa"
    config.vision_config._attn_implementation = "sdpa"
    return config


def random_backend(checkpoint: Path, scale: dict, *, device: str, dtype, frames: int, newline: str, seed: int):
    """A ``LlavaVideoVideoLM`` with random weights of ``scale``'s sizes, initialised on ``device`` in ``dtype``."""
    import torch
    from transformers import AutoProcessor

    from savi_plugin.models.backends.llava_video import LlavaVideoVideoLM
    from savi_plugin.models.llava_next.modeling import LlavaVideoForConditionalGeneration

    config = scaled_config(checkpoint, scale, newline)
    processor = AutoProcessor.from_pretrained(str(checkpoint))
    processor.newline_position = newline
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaVideoForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return LlavaVideoVideoLM(model.eval(), processor, num_frames=frames, name_or_path=f"random {newline}")


def _lora(backend, rank: int, seed: int):
    """LoRA on every language-model linear layer with a non-zero ``B`` (policy != reference at step one)."""
    import torch
    from peft import get_peft_model

    from savi_plugin.training.run import lora_config

    config = lora_config({"r": rank, "alpha": 2 * rank, "dropout": 0.0}, backend)
    torch.manual_seed(seed)
    model = get_peft_model(backend.model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_((torch.randn(param.shape, generator=generator) * 0.02).to(param.dtype))
    return model


def _official(policy, reference, *, lr: float, beta: float, alpha: float):
    """:class:`OfficialStyleRRPO` over models already in memory (the weights are random, never on disk)."""
    import torch

    from savi_plugin.bench.official_rrpo import OfficialStyleRRPO

    side = OfficialStyleRRPO.__new__(OfficialStyleRRPO)
    side.policy, side.reference = policy, reference.eval().requires_grad_(False)
    side.policy.train()
    side.params = [p for p in policy.parameters() if p.requires_grad]
    side.optimizer = torch.optim.AdamW(side.params, lr=lr, weight_decay=0.0)
    side.beta, side.alpha, side.max_grad_norm = beta, alpha, 1.0
    return side


def training_check(args, scale: dict, work: Path, checkpoint: Path) -> dict:
    """Ours vs the official-style step at the training shape (see the module docstring)."""
    import torch

    from savi_plugin.bench.fixtures import make_tagged_pair, make_video
    from savi_plugin.bench.official_rrpo import encode_pair
    from savi_plugin.bench.ours import train_backend
    from savi_plugin.video import read_frames

    dtype, frames = getattr(torch, args.dtype), scale["train_frames"]
    backend = random_backend(checkpoint, scale, device=args.device, dtype=dtype, frames=frames, newline="grid",
                             seed=args.seed)
    backend.model = _lora(backend, scale["lora_rank"], args.seed)
    initial = {k: v.detach().clone() for k, v in backend.model.named_parameters() if v.requires_grad}
    video, question = make_video(work, num_frames=frames, size=384, seed=args.seed)
    pair = make_tagged_pair(backend.tokenizer, 48)
    data = work / "pair.jsonl"
    write_jsonl(data, [{"id": "gpu-0", "video": path_for_file(video, data), "question": question, "source": "bench",
                        **pair}])  # stored relative to the file, as every reader resolves it (data/paths.py)
    tokens = backend.encode([read_frames(video, frames).frames], [question])["input_ids"].shape[1]
    options = dict(lr=1e-5, beta=0.1, alpha=0.01)
    timer = _Timer(args.device, args.warmup, args.steps)
    ours = train_backend(backend, data_path=str(data), output_dir=work / "ours_out", loss_type="rrpo",
                         beta=options["beta"], alpha=options["alpha"], lr=options["lr"], frames=frames,
                         gradient_checkpointing=True, seed=args.seed, timer=timer, base_mib=0.0,
                         use_cpu=torch.device(args.device).type == "cpu")
    ours.update(timer.summary())
    ours["live_optimizer_states"] = release(args.device)  # our trainer's optimizer state is not the official peak
    with torch.no_grad():  # the official side starts from the same adapter
        for name, param in backend.model.named_parameters():
            if name in initial:
                param.copy_(initial[name])
    reference = random_backend(checkpoint, scale, device=args.device, dtype=dtype, frames=frames, newline="grid",
                               seed=args.seed).model  # the same seed: the same weights, a second copy
    policy = backend.model
    policy.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    official = _official(policy, reference, **options)
    batch = encode_pair(backend, read_frames(video, frames).frames, question, pair)
    batch.chosen, batch.rejected = backend._to_device(batch.chosen), backend._to_device(batch.rejected)
    batch.labels, batch.phrase_ids = batch.labels.to(args.device), batch.phrase_ids.to(args.device)
    timer = _Timer(args.device, args.warmup, args.steps)
    losses = []
    for _ in range(timer.total_steps):
        timer.begin()
        losses.append(official.step(batch))
        timer.end()
    baseline = {"losses": losses, **timer.summary()}
    del official, reference, policy, backend
    return {"prompt_tokens": tokens, "ours": ours, "official": baseline,
            "first_step_loss_diff": abs(ours["losses"][0] - baseline["losses"][0]),
            "throughput_ratio": baseline["median_step_s"] / ours["median_step_s"]}


def generation_check(args, scale: dict, checkpoint: Path) -> dict:
    """VideoSAVi pairs/s with and without prefix reuse at LLaVA-OneVision-7B's shape (one newline per video)."""
    import numpy as np
    import torch

    from savi_plugin.bench.generation import _run_side

    frames = scale["generate_frames"]
    lm = random_backend(checkpoint, scale, device=args.device, dtype=getattr(torch, args.dtype), frames=frames,
                        newline="one_token", seed=args.seed)
    rng = np.random.default_rng(args.seed)
    videos = [rng.integers(0, 256, (frames, 384, 384, 3), dtype=np.uint8) for _ in range(scale["videos"])]
    side_args = argparse.Namespace(questions=6, batch_size=8, max_new_tokens=scale["max_new_tokens"], frames=frames)
    sides, outputs = {}, {}
    sync = _synchroniser(args.device)
    for name, reuse in (("reuse", True), ("no_reuse", False)):
        sides[name], outputs[name] = _run_side(lm, videos, side_args, reuse, sync)
    tokens = lm.encode([videos[0]], ["q"])["input_ids"].shape[1]
    agreement = greedy_agreement(outputs["reuse"], outputs["no_reuse"], lm.tokenizer)
    needed = min_token_agreement(args)
    return {"prompt_tokens": tokens, **sides, "outputs_equal": outputs["reuse"] == outputs["no_reuse"],
            "agreement": agreement, "min_token_agreement": needed,
            "outputs_agree": agreement["equal_tokens"] >= needed,
            "ratio": sides["reuse"]["pairs_per_s"] / sides["no_reuse"]["pairs_per_s"]}


def _synchroniser(device):
    import torch

    if torch.device(device).type != "cuda":
        return None
    return lambda: torch.cuda.synchronize(device)


def release(device) -> int:
    """Free what the side measured first still holds (its trainer, optimizer state, cached blocks) before the
    other side is measured; returns how many optimizers with state are still alive (0 expected)."""
    import gc

    import torch

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return sum(1 for o in gc.get_objects() if isinstance(o, torch.optim.Optimizer) and len(o.state))


#: the share of equal greedy tokens required between prefix reuse and full prefill: exact in float32; in bf16 and
#: fp16 the two paths add in another order, and with random weights near-tied logits flip a token now and then
#: (everything after a flip differs too), so 90% of token positions must agree
TOKEN_AGREEMENT = {"float32": 1.0, "bfloat16": 0.9, "float16": 0.9}


def min_token_agreement(args) -> float:
    given = getattr(args, "min_token_agreement", None)
    return TOKEN_AGREEMENT[args.dtype] if given is None else given


def greedy_agreement(first: list[str], second: list[str], tokenizer) -> dict:
    """How far two lists of greedy outputs agree, token by token.

    ``equal_outputs``: share of outputs that are identical; ``equal_tokens``: share of token positions (over the
    longer of each pair) whose tokens are equal -- a flipped near-tie costs the positions after it, not the whole
    run; ``first_difference``: the earliest token position at which any pair differs (None: all equal).
    """
    equal_outputs, equal, total, first_difference = 0, 0, 0, None
    for a, b in zip(first, second):
        x, y = tokenizer(a, add_special_tokens=False)["input_ids"], tokenizer(b, add_special_tokens=False)["input_ids"]
        equal_outputs += x == y
        length = max(len(x), len(y))
        total += length
        equal += sum(1 for i in range(min(len(x), len(y))) if x[i] == y[i])
        if x != y:
            at = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
            first_difference = at if first_difference is None else min(first_difference, at)
    count = max(len(first), 1)
    return {"equal_outputs": equal_outputs / count, "equal_tokens": equal / total if total else 1.0,
            "first_difference": first_difference, "outputs": len(first)}


def pin_device(device: str, env: dict | None = None) -> str:
    """Make ``cuda:N`` the only visible GPU (``CUDA_VISIBLE_DEVICES``) and return ``cuda:0``, its new name.

    The Trainer places the model on the current default GPU (and wraps it in ``DataParallel`` when it sees
    several), so ``--device cuda:1`` would otherwise train on cuda:0; set before CUDA starts.
    """
    import os

    env = os.environ if env is None else env
    if not device.startswith("cuda:"):
        return device
    index = int(device.split(":", 1)[1])
    visible = [v for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    env["CUDA_VISIBLE_DEVICES"] = visible[index] if visible else str(index)
    return "cuda:0"


def run(args) -> dict:
    import torch

    scale = FULL if args.scale == "full" else SMALL
    requested = args.device
    args.device = pin_device(args.device)  # before CUDA starts: the Trainer then uses exactly this GPU
    if device_problem(args.device):  # counted now that only the pinned GPU is visible
        from savi_plugin.errors import ConfigError

        raise ConfigError("--device", f"{requested!r}: this machine has no such CUDA device; use auto or cpu")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    from savi_plugin.bench.fixtures import work_folder

    with work_folder(args.work_dir, "gpu") as work:
        start = time.perf_counter()
        checkpoint = build_checkpoint(work)
        device_name = torch.cuda.get_device_name(args.device) if torch.device(args.device).type == "cuda" else "CPU"
        report = {"scale": args.scale, "device": device_name, "requested_device": requested, "dtype": args.dtype}
        if "train" in args.parts:
            report["training"] = training_check(args, scale, work, checkpoint)
            print_training(report["training"], scale)
        if torch.device(args.device).type == "cuda":
            torch.cuda.empty_cache()
        if "generation" in args.parts:
            report["generation"] = generation_check(args, scale, checkpoint)
            print_generation(report["generation"], scale)
        report["seconds"] = time.perf_counter() - start
        print(f"savi bench gpu ({args.scale} shape) on {device_name}, {args.dtype}: {report['seconds']:.0f} s")
        return report


def _mib(value) -> str:
    return "n/a (CPU)" if value is None else f"{value:,.0f} MiB"


def print_training(result: dict, scale: dict) -> None:
    print(f"RRPO training step, one pair, {result['prompt_tokens']} prompt tokens ({scale['train_frames']} frames), "
          f"LoRA r={scale['lora_rank']}, gradient checkpointing:")
    for name in ("ours", "official"):
        r = result[name]
        print(f"  {name:>8}: {r['median_step_s']:.3f} s/step  {1 / r['median_step_s']:.3f} pairs/s  peak "
              f"{_mib(r['peak_mib'])}  first-step loss {r['losses'][0]:.6f}")
    print(f"  throughput ours/official: {result['throughput_ratio']:.2f}x   |first-step loss difference| "
          f"{result['first_step_loss_diff']:.1e}")


def print_generation(result: dict, scale: dict) -> None:
    print(f"VideoSAVi generation, {scale['videos']} videos x {scale['generate_frames']} frames "
          f"({result['prompt_tokens']} prompt tokens), 20 prompts per video, {scale['max_new_tokens']} new tokens:")
    for name in ("reuse", "no_reuse"):
        r = result[name]
        print(f"  {name:>8}: {r['pairs_per_s']:.3f} pairs/s  prefills/video {r['prefix_prefills_per_video']:.0f}  "
              f"prefill {r['share']['prefill']:.0%} decode {r['share']['decode']:.0%}")
    agreement = result["agreement"]
    print(f"  pairs/s with reuse / without: {result['ratio']:.2f}x   greedy tokens equal: "
          f"{agreement['equal_tokens']:.1%} (needed {result['min_token_agreement']:.0%}), outputs equal "
          f"{agreement['equal_outputs']:.0%}, first difference at token {agreement['first_difference']}")


@dataclass(frozen=True)
class GPUOptions:
    """The options of ``savi bench gpu`` (one flag each, :mod:`savi_plugin.bench.options`)."""

    scale: str = checked("full", OneOf("full", "small"), help="full: LLaVA-Video-7B / LLaVA-OneVision-7B sizes (a "
                                                                "GPU); small: tiny sizes (CPU)")
    device: str = checked("auto", UsableDevice(count_gpus=False), help="cuda, cuda:1, cpu (auto: cuda when available)")
    dtype: str = checked("bfloat16", OneOf("bfloat16", "float16", "float32"))
    parts: list[str] = listed(["train", "generation"], OneOf("train", "generation"))
    warmup: int = checked(1, NonNegative(), help="untimed training steps first")
    steps: int = checked(3, AtLeast(1), help="timed training steps per side (median reported)")
    seed: int = checked(0, AtLeast(0))
    work_dir: str | None = checked(None, help="where the tiny checkpoint and the video are built")
    json: str | None = checked(None, help="also write the results to this file")
    min_token_agreement: float | None = checked(
        None, Probability(), help="share of greedy tokens that must be equal with and without prefix reuse (default: 1 in "
                   "float32, 0.9 in bf16/fp16)")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The parser of :class:`GPUOptions` (added to ``parser`` when given)."""
    return add_options(parser or argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), GPUOptions)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with report_output(args.json, args.work_dir) as output:
        report = run(args)
        generation = report.get("generation")
        return finish(report, output, generation is None or generation["outputs_agree"],
                      "greedy outputs with prefix reuse differ from those without beyond the tolerance "
                      f"({generation and generation['agreement']})")


if __name__ == "__main__":
    raise SystemExit(main())
