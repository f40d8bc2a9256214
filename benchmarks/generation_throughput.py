"""Preference-pair generation throughput (pairs/s): batched vs one-at-a-time, in the same process.

    python benchmarks/generation_throughput.py                          # tiny LLaVA-OneVision, CPU
    python benchmarks/generation_throughput.py --family qwen2_vl --videos 32 --batch-size 16
    python benchmarks/generation_throughput.py --model /ckpt/llava-onevision-7b --device cuda --num-frames 16

Both runs use the same loaded model, the same synthetic videos (written by code, with ground truth), the
same generator options and seed; only ``batch_size`` differs. A small warm-up run comes first so one-time
costs (kernel selection, lazy imports, thread pools) are not charged to either side. The timed span is
``run_generation``'s own (decoding, perturbation, generation, judging, tagging, writing); model loading is
excluded. Each side runs ``--repeats`` times (alternating, each into a fresh output) and its fastest run is
reported, which is what a shared, noisy machine can measure honestly; every run's pairs/s is printed too.
By default the generator is ``rrpo`` with ``answer_format=raw``: a random-weight model is wrong on
every question, so pairs/s equals attempts/s and the two sides make the same number of pairs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model directory (default: build a tiny random-weight model)")
    parser.add_argument("--family", default="llava_onevision", choices=["llava_onevision", "qwen2_vl"],
                        help="tiny model family when --model is not given")
    parser.add_argument("--generator", default="rrpo", choices=["rrpo", "videosavi"])
    parser.add_argument("--videos", type=int, default=16, help="synthetic videos to generate from")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; the fastest is reported")
    args = parser.parse_args(argv)

    from savi_plugin.generators import run_generation
    from savi_plugin.models import load_backend
    from savi_plugin.video.synthetic import make_synthetic_dataset

    options = ({"answer_format": "raw", "max_new_tokens": args.max_new_tokens} if args.generator == "rrpo" else
               {"question_source": "input", "max_new_tokens": args.max_new_tokens, "min_edit_distance": 0.0})
    with tempfile.TemporaryDirectory(prefix="savi-gen-bench-") as tmp:
        tmp = Path(tmp)
        make_synthetic_dataset(tmp / "videos", args.videos, seed=args.seed)
        inputs = tmp / "videos" / "samples.jsonl"
        model_path = args.model
        if model_path is None:
            from savi_plugin.models.tiny import build_tiny_model

            model_path = build_tiny_model(tmp / "model", args.family, seed=0)
        from savi_plugin.generators.runner import resolve_device

        lm = load_backend(model_path, dtype=args.dtype, device=resolve_device(args.device), num_frames=args.num_frames)

        def timed(batch_size: int, name: str, limit: int | None = None) -> dict:
            report = run_generation(generator=args.generator, model=lm, inputs=inputs, output=tmp / f"{name}.jsonl",
                                    num_frames=args.num_frames, batch_size=batch_size, seed=args.seed, limit=limit,
                                    options=options, progress=False)
            return report["throughput"]

        timed(args.batch_size, "warmup", limit=min(args.videos, args.batch_size))
        runs: dict[str, list[dict]] = {"batched": [], "single": []}
        for r in range(max(1, args.repeats)):  # alternate, so slow spells of a shared machine hit both sides
            runs["batched"].append(timed(args.batch_size, f"batched{r}"))
            runs["single"].append(timed(1, f"single{r}"))
        batched = max(runs["batched"], key=lambda t: t["pairs_per_s"] or 0.0)
        single = max(runs["single"], key=lambda t: t["pairs_per_s"] or 0.0)

    ratio = (batched["pairs_per_s"] / single["pairs_per_s"]) if single["pairs_per_s"] else float("nan")
    result = {"model": str(args.model or f"tiny {args.family}"), "device": str(lm.device), "generator": args.generator,
              "videos": args.videos, "num_frames": args.num_frames, "max_new_tokens": args.max_new_tokens,
              "batch_size": args.batch_size, "batched": batched, "one_at_a_time": single,
              "speedup": round(ratio, 3),
              "all_runs_pairs_per_s": {k: [t["pairs_per_s"] for t in v] for k, v in runs.items()}}
    print(f"{args.generator} on {result['model']} ({result['device']}), {args.videos} videos x {args.num_frames} "
          f"frames, {args.max_new_tokens} new tokens")
    print(f"  batched (batch_size={args.batch_size}): {batched['pairs']:4d} pairs in {batched['seconds']:.2f} s "
          f"= {batched['pairs_per_s']:.2f} pairs/s")
    print(f"  one at a time (batch_size=1): {single['pairs']:4d} pairs in {single['seconds']:.2f} s "
          f"= {single['pairs_per_s']:.2f} pairs/s")
    print(f"  speed-up batched / one-at-a-time: {ratio:.2f}x  (best of {len(runs['batched'])} runs each; all runs: "
          f"batched {result['all_runs_pairs_per_s']['batched']}, one at a time {result['all_runs_pairs_per_s']['single']})")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
