"""How an RRPO training step scales: frames per video, response length, and 1 vs 2 processes (CPU, gloo).

    python benchmarks/scaling.py                     # the grid below, a few minutes on 2 cores
    python benchmarks/scaling.py --json scaling.json
    python benchmarks/scaling.py --grid processes    # 1 vs 2 processes only

Every configuration runs in fresh processes on the tiny random-weight LLaVA-OneVision (savi_plugin.models.tiny),
through the real PreferenceTrainer (packed row, adapter-disabled reference, LoRA on every LM linear layer), one
pair per process and step: a *time run* (1 warm-up step, then 5 timed steps, median) and a *memory run* (1
warm-up step, then one step whose peak resident set is read; savi_plugin.bench.measure explains how). The
2-process run is `torchrun --nproc_per_node 2` (DDP over gloo), rank 0 measured, global batch 2 pairs. What to
read is the ratios within one run (the tiny model's absolute numbers say nothing about a 7B model); the machine's
cores and load are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAMES = (4, 8, 16, 32)
RESPONSES = (16, 64, 256)
BASE = {"frames": 8, "response": 64}


def _prepare(work: Path, frames: int, response: int) -> tuple[Path, Path]:
    from savi_plugin.bench.fixtures import make_tagged_pair, make_video
    from savi_plugin.models.tiny import build_tiny_model

    model = work / "model"
    if not (model / "config.json").exists():
        build_tiny_model(model, "llava_onevision", seed=0)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    video, question = make_video(work, num_frames=max(FRAMES), size=64, seed=0)
    data = work / f"pair_{frames}_{response}.jsonl"
    records = [{"id": f"p{i}", "video": str(video), "question": question, **make_tagged_pair(tokenizer, response)}
               for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return model, data


def worker(args) -> None:
    from savi_plugin.bench.measure import MemoryProbe, StepTimer
    from savi_plugin.bench.ours import train_backend
    from savi_plugin.models import load_backend
    from savi_plugin.training.run import apply_lora

    probe = MemoryProbe()
    base = probe.rss_mib()
    work = Path(args.work)
    model, data = work / "model", work / f"pair_{args.frames}_{args.response}.jsonl"
    backend = load_backend(str(model), num_frames=args.frames)
    apply_lora(backend, {"r": 8, "alpha": 16, "dropout": 0.0}, seed=0)
    timer = StepTimer(probe, warmup=1, steps=5, phase=args.phase)
    result = train_backend(backend, data_path=str(data), output_dir=work / f"out_{os.getpid()}", loss_type="rrpo",
                           beta=0.1, alpha=0.01, lr=1e-4, frames=args.frames, gradient_checkpointing=False, seed=0,
                           timer=timer, base_mib=base, use_cpu=True)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in result.items() if k not in ("logs", "losses")}))


def _measure(work: Path, frames: int, response: int, processes: int, phase: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if phase == "memory":
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    argv = [str(Path(__file__).resolve()), "--worker", "--work", str(work), "--frames", str(frames), "--response",
            str(response), "--phase", phase]
    if processes > 1:
        from savi_plugin.launch import free_port

        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(free_port()), *argv]
    else:
        cmd = [sys.executable, *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def run(args) -> dict:
    from savi_plugin.bench.measure import machine_note

    work = Path(args.work or tempfile.mkdtemp(prefix="savi_scaling_"))
    work.mkdir(parents=True, exist_ok=True)
    configs = [(BASE["frames"], BASE["response"], 1)]
    if args.grid in ("all", "inputs"):
        configs += [(f, BASE["response"], 1) for f in FRAMES if f != BASE["frames"]]
        configs += [(BASE["frames"], r, 1) for r in RESPONSES if r != BASE["response"]]
    if args.grid in ("all", "processes"):
        configs.append((BASE["frames"], BASE["response"], 2))
    rows = []
    for frames, response, processes in configs:
        _prepare(work, frames, response)
        time_run = _measure(work, frames, response, processes, "time")
        memory_run = _measure(work, frames, response, processes, "memory")
        rows.append({"frames": frames, "response_tokens": response, "processes": processes,
                     "median_step_s": time_run["median_step_s"], "step_peak_mib": memory_run["step_peak_mib"],
                     "process_peak_mib": memory_run["process_peak_mib"]})
        print(json.dumps(rows[-1]), flush=True)
    base = next(r for r in rows if (r["frames"], r["response_tokens"], r["processes"]) ==
                (BASE["frames"], BASE["response"], 1))
    for row in rows:
        row["time_vs_base"] = row["median_step_s"] / base["median_step_s"]
        row["step_peak_vs_base"] = row["step_peak_mib"] / base["step_peak_mib"]
    report = {"machine": machine_note(), "base": BASE, "rows": rows}
    print(f"\n{report['machine']}")
    print("| frames | response tokens | processes | s/step | x base | step peak MiB | x base | process peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['frames']} | {r['response_tokens']} | {r['processes']} | {r['median_step_s']:.3f} | "
              f"{r['time_vs_base']:.2f} | {r['step_peak_mib']:.0f} | {r['step_peak_vs_base']:.2f} | "
              f"{r['process_peak_mib']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="where the tiny model, the video and the pairs are built")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--grid", default="all", choices=("all", "inputs", "processes"),
                        help="inputs: frames and response length; processes: 1 vs 2 processes (each with the base)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=BASE["frames"], help=argparse.SUPPRESS)
    parser.add_argument("--response", type=int, default=BASE["response"], help=argparse.SUPPRESS)
    parser.add_argument("--phase", default="time", choices=("time", "memory"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
    else:
        run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
