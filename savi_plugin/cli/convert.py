"""``savi convert llava-next SRC DST``: LLaVA-NeXT checkpoints (LLaVA-Video, LLaVA-OneVision) for transformers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from savi_plugin.cli import say
from savi_plugin.config.values import Range, add_flag, checked
from savi_plugin.constants import DTYPES


@dataclass(frozen=True)
class ConvertOptions:
    """The numeric options of ``savi convert`` (checked by :mod:`savi_plugin.config.values`)."""

    pool_stride: int | None = checked(None, Range(1, 64),
                                      help="video pooling stride (default 2, what LLaVA-NeXT's video path uses)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert a checkpoint from another code base's format")
    sub = parser.add_subparsers(dest="convert_command", metavar="FORMAT", required=True)

    llava = sub.add_parser(
        "llava-next",
        help="LLaVA-NeXT format (lmms-lab LLaVA-Video-*-Qwen2, llava-onevision-qwen2-*) -> transformers LLaVA-OneVision",
        description="Convert a LLaVA-NeXT checkpoint directory SRC into DST, loadable with transformers' "
        "LLaVA-OneVision classes (or savi's LLaVA-Video subclass for grid newlines). Every source weight is "
        "mapped or reported; see DST/conversion_report.json.",
    )
    llava.add_argument("src", metavar="SRC", help="LLaVA-NeXT checkpoint directory (config.json, weights, tokenizer)")
    llava.add_argument("dst", metavar="DST", help="output directory")
    llava.add_argument("--vision-config", default=None,
                       help="the SigLIP tower's config.json (or its directory); needed when mm_vision_tower is "
                            "not google/siglip-so400m-patch14-384")
    llava.add_argument("--dtype", default=None, choices=DTYPES,
                       help="output dtype (default: keep the source's)")
    add_flag(llava, "--pool-stride", ConvertOptions, "pool_stride")
    llava.add_argument("--allow-unmapped", action="store_true",
                       help="write the checkpoint even if some source weights have no target (listed in the report)")
    llava.add_argument("--overwrite", action="store_true", help="allow a non-empty DST")
    llava.set_defaults(func=run_llava_next)


def run_llava_next(args) -> int:
    from savi_plugin.models.llava_next.convert import convert_llava_next
    from savi_plugin.models.llava_next.mapping import ConversionError

    try:
        report = convert_llava_next(
            args.src, args.dst, vision_config=args.vision_config, dtype=args.dtype, pool_stride=args.pool_stride,
            allow_unmapped=args.allow_unmapped, overwrite=args.overwrite,
        )
    except ConversionError as exc:
        say(f"error: {exc}", file=sys.stderr)
        return 1
    summary = {k: report.to_dict()[k] for k in ("model_class", "video_options", "num_mapped", "unmapped", "filled")}
    print(json.dumps(summary, indent=2))
    say(f"wrote {args.dst} (details: {args.dst}/conversion_report.json)")
    return 0
