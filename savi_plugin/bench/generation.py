"""VideoSAVi generation pairs/s with and without the video prefix reused, in one run, plus a cost model at 7B.

    savi bench generation                          # tiny LLaVA-OneVision, 32 frames, CPU
    savi bench generation --videos 4 --repeats 3

The workload is VideoSAVi's (Kulkarni & Fazli, arXiv 2412.00624; :mod:`savi_plugin.generators.videosavi`):
per video two question prompts (spatial, temporal), then for each of ``--questions`` questions an answer, a
critique of it and a revision: ``2 + 3 x 6 = 20`` prompts that begin with the same template text and video,
rendered with the generator's own templates and run through ``generate_chunked`` stage by stage, as the
generator batches them. A random-weight model writes no parseable questions, so the questions are fixed
sample questions and every question counts as a pair (the generator's filters are not what is measured);
the answers and critiques fed to the next stage are the model's own outputs, so prompt lengths are real.

Both sides use the same loaded model and inputs; only ``VideoLM.reuse_prefixes`` differs (reuse runs inside
``reuse_video_prefixes``, as the generator does). Runs alternate between the sides ``--repeats`` times and each
side keeps its fastest (a shared machine). The greedy outputs of the two sides must be equal, or the run fails.

Printed per side: pairs/s, vision encodings and prefix prefills per video, and where the time goes: the
language model's prefill calls (more than one new token), its decoding calls (one token per row), the vision
tower, and the rest (processor, tokenization, cache copies, sampling). :func:`predicted_ratio` is the cost
model for LLaVA-OneVision-7B on one GPU.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass

from savi_plugin.bench.measure import finish, report_output
from savi_plugin.bench.options import HIDDEN, IMAGE_SIZE, VISION_HIDDEN, add_options, check_bench_resources
from savi_plugin.config.values import AtLeast, checked

SAMPLE_QUESTIONS = [
    "What color is the object that moves across the frame, and where does it stop?",
    "Which objects appear in the upper half of the frame during the video?",
    "How many distinct shapes are visible at the start of the video?",
    "In which direction does the object move after it changes speed?",
    "What happens right before the object leaves the frame?",
    "Does the object move faster at the beginning or at the end of the video?",
]


@dataclass
class CostModel:
    """Seconds per VideoSAVi video on one GPU, with and without prefix reuse (all sizes per video).

    Prefill and vision are compute-bound (``2 x params x tokens`` FLOPs plus attention at ``flops`` per second);
    a decoding step is memory-bound (the weights plus every row's KV cache read once per step at ``bandwidth``).
    Defaults: LLaVA-OneVision-7B (Qwen2-7B: 7.6e9 parameters, 28 layers, hidden 3,584, KV width 512; SigLIP
    so400m: 0.4e9 parameters, 729 patches per frame) at 32 frames (196 tokens each + a newline), bf16, on an
    H200 at 40% of its dense bf16 peak (989 TFLOP/s) and 80% of its 4.8 TB/s; 20 prompts of ~150 suffix tokens,
    256 new tokens each, 8 rows per batch.
    """

    lm_params: float = 7.6e9
    layers: int = 28
    hidden: int = 3584
    kv_width: int = 512
    vision_params: float = 0.4e9
    vision_tokens: int = 32 * 729
    prefix_tokens: int = 32 * 196 + 1 + 20
    suffix_tokens: int = 150
    new_tokens: int = 256
    prompts: int = 20
    batch_rows: int = 8
    bytes_per_value: int = 2
    flops: float = 0.4 * 989e12
    bandwidth: float = 0.8 * 4.8e12

    def prefill(self, tokens: int, context: int) -> float:
        """Seconds to prefill ``tokens`` new tokens after ``context`` cached ones."""
        linear = 2 * self.lm_params * tokens
        attention = 4 * self.layers * self.hidden * tokens * (context + tokens / 2)
        return (linear + attention) / self.flops

    def decode(self) -> float:
        """Seconds of decoding per video: ``prompts x new_tokens / batch_rows`` memory-bound steps."""
        context = self.prefix_tokens + self.suffix_tokens + self.new_tokens / 2
        kv = self.batch_rows * context * self.layers * 2 * self.kv_width * self.bytes_per_value
        step = (self.lm_params * self.bytes_per_value + kv) / self.bandwidth
        return self.prompts * self.new_tokens / self.batch_rows * step

    def seconds(self, reuse: bool) -> dict:
        vision = 2 * self.vision_params * self.vision_tokens / self.flops
        if reuse:
            prefill = self.prefill(self.prefix_tokens, 0) + self.prompts * self.prefill(self.suffix_tokens,
                                                                                      self.prefix_tokens)
            encodings = 1
        else:
            prefill = self.prompts * self.prefill(self.prefix_tokens + self.suffix_tokens, 0)
            encodings = self.prompts
        return {"vision": encodings * vision, "prefill": prefill, "decode": self.decode()}


def predicted_ratio(model: CostModel | None = None) -> dict:
    """The cost model's seconds per video and pairs/s ratio (reuse / no reuse)."""
    model = model or CostModel()
    with_reuse, without = model.seconds(True), model.seconds(False)
    return {"assumptions": asdict(model), "with_reuse_s": with_reuse, "without_reuse_s": without,
            "ratio": sum(without.values()) / sum(with_reuse.values())}


class _Clock:
    """Times the language model's prefill and decoding calls and the vision tower; counts encoded frames."""

    def __init__(self, language_model, tower, sync=None):
        #: waits for the device's queued work (``torch.cuda.synchronize``) before each clock reading: CUDA calls
        #: return before the work is done, so an unsynchronised reading times the launch, not the computation
        self.sync = sync or (lambda: None)
        self.seconds = {"prefill": 0.0, "decode": 0.0, "vision": 0.0}
        self.frames = 0
        self._start: dict[str, float] = {}
        self._handles = [language_model.register_forward_pre_hook(self._lm_start, with_kwargs=True),
                         language_model.register_forward_hook(self._lm_end),
                         tower.register_forward_pre_hook(self._vision_start),
                         tower.register_forward_hook(self._vision_end)]

    def _lm_start(self, module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        tokens = embeds.shape[1] if embeds is not None else kwargs["input_ids"].shape[1]
        self._kind = "prefill" if tokens > 1 else "decode"
        self.sync()
        self._start["lm"] = time.perf_counter()

    def _lm_end(self, module, args, output):
        self.sync()
        self.seconds[self._kind] += time.perf_counter() - self._start["lm"]

    def _vision_start(self, module, args):
        self.frames += int(args[0].shape[0])
        self.sync()
        self._start["vision"] = time.perf_counter()

    def _vision_end(self, module, args, output):
        self.sync()
        self.seconds["vision"] += time.perf_counter() - self._start["vision"]

    def remove(self):
        for handle in self._handles:
            handle.remove()


def videosavi_workload(lm, videos, *, questions: int, batch_size: int, max_new_tokens: int) -> list[str]:
    """VideoSAVi's four stages for ``videos`` (see the module docstring); returns every output, in order."""
    from savi_plugin.generators.base import generate_chunked
    from savi_plugin.generators.prompts import render
    from savi_plugin.generators.videosavi import VideoSAViGenerator

    templates = VideoSAViGenerator().prompts
    asked = [SAMPLE_QUESTIONS[i % len(SAMPLE_QUESTIONS)] for i in range(questions)]
    spatial = (questions + 1) // 2

    def stage(frames, prompts, seed):
        return generate_chunked(lm, frames, prompts, batch_size=batch_size, seed=seed,
                                max_new_tokens=max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0)

    frames = [v for v in videos for _ in range(2)]
    prompts = [render(templates, kind, num_questions=n) for _ in videos
               for kind, n in (("spatial_questions", spatial), ("temporal_questions", questions - spatial))]
    outputs = stage(frames, prompts, 0)
    threads = [(v, q) for v in videos for q in asked]
    answers = stage([v for v, _ in threads], [render(templates, "answer", question=q) for _, q in threads], 1)
    critiques = stage([v for v, _ in threads], [render(templates, "critique", question=q, answer=a)
                                                 for (_, q), a in zip(threads, answers)], 2)
    revisions = stage([v for v, _ in threads], [render(templates, "revision", question=q, answer=a, critique=c)
                                                 for (_, q), a, c in zip(threads, answers, critiques)], 3)
    return outputs + answers + critiques + revisions


def _run_side(lm, videos, args, reuse: bool, sync=None) -> tuple[dict, list[str]]:
    from savi_plugin.models.prefix_cache import reuse_video_prefixes

    decoder = lm.decoder()
    clock = _Clock(decoder.language_model, decoder.vision_tower, sync)
    lm.reuse_prefixes = reuse
    clock.sync()
    start = time.perf_counter()
    try:
        if reuse:
            with reuse_video_prefixes(lm) as store:
                outputs = videosavi_workload(lm, videos, questions=args.questions, batch_size=args.batch_size,
                                             max_new_tokens=args.max_new_tokens)
            prefills = store.prefills
        else:
            outputs = videosavi_workload(lm, videos, questions=args.questions, batch_size=args.batch_size,
                                         max_new_tokens=args.max_new_tokens)
            prefills = len(outputs)  # every prompt prefills its whole prompt, video included
    finally:
        clock.sync()
        seconds = time.perf_counter() - start
        clock.remove()
    pairs = len(videos) * args.questions
    timed = sum(clock.seconds.values())
    return {"seconds": seconds, "pairs": pairs, "pairs_per_s": pairs / seconds, "prompts": len(outputs),
            "vision_encodings_per_video": clock.frames / args.frames / len(videos),
            "prefix_prefills_per_video": prefills / len(videos),
            "share": {**{k: v / seconds for k, v in clock.seconds.items()}, "other": (seconds - timed) / seconds}}, \
        outputs


def run(args) -> dict:
    import numpy as np
    import torch

    from savi_plugin.bench.fixtures import ModelShape, build_bench_model, model_line, video_tokens, work_folder
    from savi_plugin.bench.measure import machine_note
    from savi_plugin.models import load_backend

    torch.set_num_threads(args.threads)
    load_before = machine_note()
    shape = ModelShape(hidden_size=args.hidden, num_layers=args.layers, image_size=args.image_size,
                       intermediate_size=args.intermediate or None, vocab_size=args.vocab or None,
                       vision_hidden_size=args.vision_hidden or None, vision_layers=args.vision_layers or None)
    with work_folder(args.work_dir, "generation") as work:  # the model is in memory once loaded
        lm = load_backend(build_bench_model(work, shape), num_frames=args.frames)
    rng = np.random.default_rng(args.seed)
    videos = [rng.integers(0, 256, (args.frames, args.image_size, args.image_size, 3), dtype=np.uint8)
              for _ in range(args.videos)]
    videosavi_workload(lm, videos[:1], questions=1, batch_size=args.batch_size, max_new_tokens=2)  # warm-up
    runs: dict[str, list[dict]] = {"reuse": [], "no_reuse": []}
    outputs = {}
    for _ in range(max(1, args.repeats)):
        for name, reuse in (("reuse", True), ("no_reuse", False)):
            result, outputs[name] = _run_side(lm, videos, args, reuse)
            runs[name].append(result)
    lm.reuse_prefixes = True
    best = {name: max(r, key=lambda x: x["pairs_per_s"]) for name, r in runs.items()}
    report = {"model": model_line(asdict(shape)), "video_tokens": video_tokens(args.frames, args.image_size),
              "frames": args.frames, "videos": args.videos, "questions": args.questions,
              "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "threads": args.threads,
              "best": best, "runs_pairs_per_s": {k: [round(r["pairs_per_s"], 4) for r in v] for k, v in runs.items()},
              "ratio": best["reuse"]["pairs_per_s"] / best["no_reuse"]["pairs_per_s"],
              "outputs_equal": outputs["reuse"] == outputs["no_reuse"], "cost_model_7b": predicted_ratio(),
              "machine": {"before": load_before, "after": machine_note()}}
    print_report(report)
    return report


def print_report(report: dict) -> None:
    print(f"VideoSAVi generation: {report['videos']} videos x {report['frames']} frames = {report['video_tokens']} "
          f"video tokens each, {report['questions']} questions (2 + 3 x {report['questions']} prompts per video), "
          f"{report['max_new_tokens']} new tokens, batch {report['batch_size']}; {report['model']}; "
          f"CPU, {report['threads']} threads")
    print(f"  {'':>9}  {'pairs/s':>8}  {'vision enc./video':>17}  {'prefills/video':>14}  "
          f"{'prefill':>7}  {'decode':>6}  {'vision':>6}  {'other':>5}")
    for name in ("reuse", "no_reuse"):
        r = report["best"][name]
        s = r["share"]
        print(f"  {name:>9}  {r['pairs_per_s']:8.3f}  {r['vision_encodings_per_video']:17.1f}  "
              f"{r['prefix_prefills_per_video']:14.1f}  {s['prefill']:7.0%}  {s['decode']:6.0%}  {s['vision']:6.0%}  "
              f"{s['other']:5.0%}")
    runs = report["runs_pairs_per_s"]
    print(f"  pairs/s with reuse / without: {report['ratio']:.2f}x (fastest of {len(runs['reuse'])} alternating runs "
          f"each; all runs: {runs})   greedy outputs equal: {report['outputs_equal']}")
    model = report["cost_model_7b"]
    w, wo = model["with_reuse_s"], model["without_reuse_s"]
    print(f"  cost model, LLaVA-OneVision-7B, 32 frames, one H200 (bf16; see CostModel): per video "
          f"{sum(wo.values()):.1f} s without reuse (vision {wo['vision']:.2f}, prefill {wo['prefill']:.2f}, decode "
          f"{wo['decode']:.2f}) vs {sum(w.values()):.1f} s with (vision {w['vision']:.2f}, prefill {w['prefill']:.2f}, "
          f"decode {w['decode']:.2f}): {model['ratio']:.2f}x")
    print(f"  machine: {report['machine']['before']} at start, {report['machine']['after'].split(', ')[-1]} at end")


@dataclass(frozen=True)
class GenerationOptions:
    """The options of ``savi bench generation`` (one flag each, :mod:`savi_plugin.bench.options`)."""

    videos: int = checked(2, AtLeast(1), help="videos per run (one generator batch)")
    frames: int = checked(32, AtLeast(1), help="frames per video (VideoSAVi: 32)")
    image_size: int = checked(96, *IMAGE_SIZE, help="frame size; ceil(size/16)^2 tokens per frame (96: 36 -> 1,153 "
                                                    "video tokens at 32 frames)")
    questions: int = checked(6, AtLeast(1), help="questions per video (VideoSAVi: ~6)")
    max_new_tokens: int = checked(32, AtLeast(1))
    batch_size: int = checked(8, AtLeast(1), help="prompts per generate call")
    hidden: int = checked(256, *HIDDEN, help="language-model hidden size")
    layers: int = checked(4, AtLeast(1), help="language-model layers")
    intermediate: int = checked(1344, AtLeast(0), help="MLP width (5.25 x hidden, Qwen2's ratio)")
    vocab: int = checked(10752, AtLeast(0), help="vocabulary (42 x hidden, Qwen2-7B's V/H)")
    vision_hidden: int = checked(96, *VISION_HIDDEN, help="vision-tower width")
    vision_layers: int = checked(2, AtLeast(0), help="vision-tower layers")
    threads: int = checked(1, AtLeast(1), help="torch CPU threads")
    repeats: int = checked(2, AtLeast(1), help="runs per side, alternating; the fastest is kept")
    seed: int = checked(0, AtLeast(0))
    work_dir: str | None = checked(None, help="where the model is built and cached (default: a temporary folder)")
    json: str | None = checked(None, help="also write the results to this file")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The parser of :class:`GenerationOptions` (added to ``parser`` when given)."""
    return add_options(parser or argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), GenerationOptions)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_bench_resources(parser, args)
    with report_output(args.json, args.work_dir) as output:
        report = run(args)
        return finish(report, output, report["outputs_equal"],
                      "greedy outputs with prefix reuse differ from those without; the comparison is not valid")


if __name__ == "__main__":
    raise SystemExit(main())
