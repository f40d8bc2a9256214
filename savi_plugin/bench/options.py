"""The benchmarks' command-line options: each benchmark declares its flags once, as a checked dataclass.

Every field is one flag, ``--`` + its name with ``-`` for ``_`` (``image_size`` -> ``--image-size``); its type,
default, help and range come from the field (:mod:`savi_plugin.config.values`), so ``savi bench <name>``,
``benchmarks/<name>.py`` and the worker processes a benchmark starts (:func:`savi_plugin.bench.measure.forward_args`)
all refuse a bad value the same way: argparse's one line ``argument --flag: message`` and exit 2, before any work.

    @dataclass(frozen=True)
    class DecodeOptions:
        frames: int = checked(300, AtLeast(1), help="length of the synthetic clip")
        samples: list[int] = listed([16, 32], AtLeast(1), help="uniform sample sizes to read")

    parser = add_options(argparse.ArgumentParser(), DecodeOptions)

A ``bool`` field is an ``--x/--no-x`` switch; a ``list`` field takes one or more values, each checked; a field
with a :class:`~savi_plugin.config.values.OneOf` rule lists its choices in ``--help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from typing import Any

from savi_plugin.config.values import (AtLeast, Check, Each, NonNegative, OneOf, Rule, add_flag, checked,
                                       field_rules, rules)

#: frame size of a synthetic H.264 clip: libx264 with yuv420p needs even dimensions
EVEN_SIZE = (AtLeast(2), Check(lambda v: v % 2 == 0, "must be even (H.264 frames)"))
#: frame size of the tiny LLaVA-OneVision (8-pixel patches; also written as an H.264 clip)
IMAGE_SIZE = (AtLeast(8), Check(lambda v: v % 8 == 0, "must be a multiple of 8 (the model's patch size)"))
#: language-model width of the tiny Qwen2: 4 heads whose rotary dimension (hidden / 4) is even
HIDDEN = (AtLeast(8), Check(lambda v: v % 8 == 0, "must be a multiple of 8 (4 heads of even width)"))
#: vision-tower width (0: the tiny default): split into max(1, width // 32) heads of equal width
VISION_HIDDEN = (AtLeast(0), Check(lambda v: v % max(1, v // 32) == 0,
                                   "must divide into max(1, width // 32) equal heads (e.g. a multiple of 32)"))



@dataclasses.dataclass(frozen=True)
class PairStepShape:
    """The model shape and timing options the two preference-step benchmarks share (``savi bench train-step``
    and ``savi bench trl``: the same tiny-but-7B-proportioned model, one pair per step); each adds its own."""

    hidden: int = checked(512, *HIDDEN, help="language-model hidden size")
    layers: int = checked(8, AtLeast(1), help="language-model layers")
    intermediate: int = checked(2688, AtLeast(0), help="language-model MLP width (0: tiny default 2 x hidden; 2688 = "
                                                       "5.25 x 512, Qwen2's ratio)")
    vocab: int = checked(21504, AtLeast(0), help="vocabulary size (0: the tiny tokenizer's ~560); 21504 = 42 x 512, "
                                                 "Qwen2-7B's V/H")
    vision_hidden: int = checked(192, *VISION_HIDDEN, help="vision-tower width (0: tiny default 32)")
    vision_layers: int = checked(4, AtLeast(0), help="vision-tower layers (0: tiny default 2)")
    response_tokens: int = checked(48, AtLeast(1), help="tokens per response (about)")
    lora_rank: int = checked(16, AtLeast(1), help="LoRA rank (alpha = 2 x rank)")
    warmup: int = checked(1, NonNegative(), help="untimed steps first")
    steps: int = checked(3, AtLeast(1), help="timed steps (median reported)")
    threads: int = checked(2, AtLeast(1), help="torch CPU threads per side")
    repeats: int = checked(1, AtLeast(1), help="time runs per side, alternating sides; the fastest is kept (for a "
                                               "busy machine)")
    seed: int = checked(0, AtLeast(0))


def _refuse(parser: argparse.ArgumentParser, message: str) -> None:
    """argparse's refusal of a bad flag as one line (``prog: error: argument --flag: ...``, exit 2), without the
    usage text ``parser.error`` prints before it."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def check_pair_step(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The cross-flag rule of :class:`PairStepShape`: ``--lora-rank`` at most ``--hidden``, the widest
    ``min(d_in, d_out)`` of the layers it adapts (``q_proj``: hidden -> hidden); the update ``B @ A`` has rank at
    most that (Hu et al. 2021, LoRA, Sec. 4.1), so a higher rank adds memory, not capacity -- checked as the
    training run's ``lora.r`` is, before anything is built (one line, exit 2)."""
    if args.lora_rank > args.hidden:
        _refuse(parser, f"argument --lora-rank: must be <= --hidden ({args.hidden}), the largest rank an adapted layer "
                     f"can use; a higher rank adds memory, not capacity, got {args.lora_rank}")


def check_bench_resources(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What a benchmark's flags ask of the machine, checked before anything is built (argparse's one line naming
    the flag, exit 2), by the caps every savi job obeys: a frame at most ``$SAVI_MAX_FRAME_PIXELS``, a clip at most
    ``$SAVI_MAX_DECODED_BYTES`` and the clips of one run at most ``$SAVI_MAX_BATCH_DECODED_BYTES`` (as RGB), a
    sequence (video tokens + response) inside the tiny model's context window, and the model's float32 weights
    within half the machine's memory. Each field is read only where the benchmark has it."""
    from savi_plugin.bench.fixtures import video_tokens
    from savi_plugin.environment import env_value, format_bytes
    from savi_plugin.models.tiny import TINY_CONTEXT

    size, frames = getattr(args, "image_size", None), getattr(args, "frames", None)
    if size is not None:
        if size * size > env_value("SAVI_MAX_FRAME_PIXELS"):
            _refuse(parser, f"argument --image-size: a {size}x{size} frame is above $SAVI_MAX_FRAME_PIXELS "
                         f"({env_value('SAVI_MAX_FRAME_PIXELS')} pixels), got {size}")
        clip = (frames or 1) * size * size * 3
        if clip > env_value("SAVI_MAX_DECODED_BYTES"):
            _refuse(parser, f"argument --frames: {frames} frames of {size}x{size} take {format_bytes(clip)} as RGB, "
                         f"above $SAVI_MAX_DECODED_BYTES ({format_bytes(env_value('SAVI_MAX_DECODED_BYTES'))})")
        videos = getattr(args, "videos", None) or 1
        if videos * clip > env_value("SAVI_MAX_BATCH_DECODED_BYTES"):
            _refuse(parser, f"argument --videos: {videos} clips take {format_bytes(videos * clip)} as RGB, above "
                         f"$SAVI_MAX_BATCH_DECODED_BYTES ({format_bytes(env_value('SAVI_MAX_BATCH_DECODED_BYTES'))})")
        response = next((getattr(args, f) for f in ("response_tokens", "max_new_tokens") if hasattr(args, f)), 0)
        flag = "--response-tokens" if hasattr(args, "response_tokens") else "--max-new-tokens"
        tokens = video_tokens(frames or 1, size) + response
        if tokens >= TINY_CONTEXT:
            _refuse(parser, f"argument {flag}: {response} response tokens after {tokens - response} video tokens "
                         f"(--frames, --image-size) are not inside the model's context window of {TINY_CONTEXT} "
                         f"tokens, got {response}")
    hidden, layers = getattr(args, "hidden", None), getattr(args, "layers", None)
    if hidden is not None and layers is not None:
        inter = getattr(args, "intermediate", 0) or 2 * hidden
        vocab = getattr(args, "vocab", 0) or 1024
        vision = getattr(args, "vision_hidden", 0) or 32
        text = layers * (4 * hidden * hidden + 3 * hidden * inter) + 2 * vocab * hidden
        tower = (getattr(args, "vision_layers", 0) or 2) * 12 * vision * vision
        params = text + tower
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
        flags = ("--layers", "--hidden, --layers, --intermediate, --vocab") if text >= tower else (
            "--vision-layers", "--vision-hidden, --vision-layers")
        if memory and params * 4 > memory // 2:
            _refuse(parser, f"argument {flags[0]}: the model would hold ~{params:.3g} parameters "
                         f"({format_bytes(params * 4)} in float32; {flags[1]}), "
                         f"more than half this machine's "
                         f"memory ({format_bytes(memory)})")


def listed(default: list, *declared: Rule, help: str | None = None) -> Any:
    """A list field (a flag with one or more values) whose every element obeys ``declared``."""
    return dataclasses.field(default_factory=lambda: list(default), metadata=rules(Each(*declared), help=help))


def flag_of(name: str) -> str:
    """The flag of a field: ``image_size`` -> ``--image-size``."""
    return "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """Add one flag per field of ``cls`` to ``parser`` (see the module docstring); returns ``parser``."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag = flag_of(field.name)
        if hints[field.name] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default,
                                help=field.metadata.get("help"))
            continue
        choices = _choices(field_rules(cls, field))
        add_flag(parser, flag, cls, field.name, **({"choices": choices} if choices else {}))
    return parser


def _choices(declared: tuple[Rule, ...]) -> tuple | None:
    for rule in declared:
        if isinstance(rule, Each):
            found = _choices(rule.rules)
            if found:
                return found
        if isinstance(rule, OneOf):
            return rule.choices
    return None
