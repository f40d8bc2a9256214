"""Honest CPU measurements: step times and peak resident memory, each in a fresh process.

Every side of a comparison runs twice, each time in its **own fresh interpreter** with the same environment,
so that one run's freed memory can neither hide nor inflate another's peak:

* a **time** run: ``warmup`` untimed steps (thread pools, kernel selection, optimizer state), then ``steps``
  timed steps with glibc's allocator as it is; the median is reported;
* a **memory** run: ``warmup`` steps, then one step whose peak is read from the kernel (PyTorch keeps no
  allocator statistics for CPU tensors, and ``tracemalloc`` does not see them). The process starts with
  ``MALLOC_MMAP_THRESHOLD_=131072`` (:data:`MEMORY_ENV`), which fixes glibc's mmap threshold (it otherwise
  grows to 32 MiB after the first large free): every tensor above 128 KiB is its own mapping and leaves the
  resident set when freed, so the resident set tracks live tensor memory instead of what the heap keeps for
  reuse. :meth:`MemoryProbe.mark` returns freed heap to the OS (``malloc_trim``), records the resident set
  (``VmRSS``) and resets the kernel's peak counter (``/proc/self/clear_refs``, Linux >= 4.0);
  :meth:`MemoryProbe.peak_since_mark` reads the peak (``VmHWM``) reached since then.

Why two runs: under the pinned threshold every large allocation is a fresh ``mmap`` whose pages fault in
(measured on the RRPO step: +40% step time), so timing there would charge the allocator, not the step; without
it, freed tensors stay resident and the peak says more about heap reuse than about what the step needs
(measured: 910 MiB instead of 153 MiB for the same step). Pinning the threshold in the middle of a run with
``mallopt`` is not the same either: the small allocations then scatter over the heap that the earlier steps
grew and fault its pages back in (measured: 764 MiB).

Where the peak counter cannot be reset, the peak of the whole process (``ru_maxrss``) is used and the result
says so (``exact_reset: false``): the number is then an upper bound. Linux only (``/proc/self/status``).
"""

from __future__ import annotations

import contextlib

import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Iterator
from dataclasses import dataclass

MIB = 1024 * 1024
#: Environment of every worker process (see the module docstring).
#: Added to the environment of memory runs only (see the module docstring).
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
WORKER_ENV = {"TOKENIZERS_PARALLELISM": "false",
              "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def trim_heap() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so RSS reflects live memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: freed memory may stay resident, which only makes a baseline larger


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # "5" resets VmHWM to the current RSS
        return True
    except OSError:
        return False


@dataclass
class MemoryProbe:
    """Resident-memory marks of the current process (see the module docstring)."""

    base_kib: int = 0
    exact_reset: bool = True

    def rss_mib(self) -> float:
        """Current resident set size after trimming the heap, in MiB."""
        trim_heap()
        return status_kib("VmRSS") / 1024

    def mark(self) -> float:
        """Trim the heap, remember the resident set, reset the peak counter; returns the RSS in MiB."""
        trim_heap()
        self.base_kib = status_kib("VmRSS")
        self.exact_reset = _reset_peak()
        if not self.exact_reset:
            self.base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self.base_kib / 1024

    def peak_mib(self) -> float:
        """The peak resident set since :meth:`mark` (whole-process peak when it could not be reset), MiB."""
        if self.exact_reset:
            return status_kib("VmHWM") / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def peak_since_mark(self) -> float:
        """Extra resident memory reached since :meth:`mark`, in MiB."""
        return self.peak_mib() - self.base_kib / 1024


def median(values) -> float:
    values = list(values)
    return float(statistics.median(values)) if values else float("nan")


def run_worker(module: str, argv: list[str], *, env: dict[str, str] | None = None,
               timeout: float | None = None) -> dict:
    """Run ``python -m <module> <argv>`` in a fresh interpreter and return the JSON of its last stdout line.

    The child gets :data:`WORKER_ENV` and a ``PYTHONPATH`` that finds this checkout of ``savi_plugin``.
    Raises ``RuntimeError`` with the child's stderr tail when it fails.
    """
    from savi_plugin.data.outputs import start_child  # not at import: the workers import this module too

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    child_env = {**os.environ, **WORKER_ENV, **(env or {}),
                 "PYTHONPATH": root if not path else root + os.pathsep + path}
    with start_child([sys.executable, "-m", module, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True, env=child_env) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:  # a timeout or a stop: the worker goes too (as subprocess.run does)
            proc.kill()
            raise
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(stderr.strip().splitlines()[-30:])
        raise RuntimeError(f"worker {module} {' '.join(argv)} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1])


def measure_sides(module: str, argv: list[str], sides, *, repeats: int = 1, memory: bool = True) -> dict:
    """Time runs and memory runs of every side, each in a fresh process (see the module docstring).

    The worker is ``python -m <module> <argv> --worker <side> --phase time|memory``. With ``repeats > 1`` the
    time runs alternate between the sides (``a b a b ...``) so that a busy spell of a shared machine falls on
    both, and each side keeps its fastest run (lowest median step): the best estimate of what the step costs.
    Returns ``{side: result}``: the kept time run, its ``time_runs`` (every run's median), and with ``memory``
    the memory run's peaks (``step_peak_mib``, ``process_peak_mib``, ``exact_reset``, ``mmap_threshold``) and
    its losses as ``memory_run_losses``.
    """
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for _ in range(max(1, repeats)):
        for side in sides:
            runs[side].append(run_worker(module, [*argv, "--worker", side, "--phase", "time"]))
    results = {}
    for side in sides:
        result = dict(min(runs[side], key=lambda r: r["median_step_s"]))
        result["time_runs"] = [r["median_step_s"] for r in runs[side]]
        if memory:
            peaks = run_worker(module, [*argv, "--worker", side, "--phase", "memory"], env=MEMORY_ENV)
            result.update({k: peaks[k] for k in ("step_peak_mib", "process_peak_mib", "exact_reset",
                                                 "mmap_threshold")})
            result["memory_run_losses"] = peaks["losses"]
        results[side] = result
    return results


def forward_args(parser, args, drop=("worker", "phase")) -> list[str]:
    """The command line that reproduces ``args`` for ``parser``, without the options named in ``drop``
    (destinations), e.g. to hand the same options to a worker."""
    import argparse

    out = []
    for action in parser._actions:
        if not action.option_strings or action.dest == "help" or action.dest in drop:
            continue
        value = getattr(args, action.dest)
        flag = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            out.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            out += [flag, *map(str, value)]
        elif value is not None:
            out += [flag, str(value)]
    return out


def require_linux() -> None:
    """Peak-memory numbers come from ``/proc/self/status``; refuse clearly elsewhere."""
    if not os.path.exists("/proc/self/status"):
        raise SystemExit("this benchmark reads /proc/self/status and needs Linux")


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, ``inf`` for a zero denominator (never a ZeroDivisionError)."""
    return numerator / denominator if denominator else float("inf")


class StepTimer:
    """Times the steps of a training run, or measures the memory of its last step (see the module docstring).

    ``phase="time"``: steps ``0 .. warmup-1`` are warm-up, the next ``steps`` are timed (``warmup + steps`` in
    all). ``phase="memory"``: ``warmup`` steps, then one memory step (``warmup + 1`` in all). :meth:`begin` marks
    memory *then* starts the clock; :meth:`end` stops the clock *then* reads the peak.
    """

    def __init__(self, probe: MemoryProbe, *, warmup: int, steps: int, phase: str = "time"):
        if phase not in ("time", "memory"):
            raise ValueError(f"phase must be 'time' or 'memory', got {phase!r}")
        if phase == "time" and steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.probe, self.warmup, self.phase = probe, warmup, phase
        self.steps = steps if phase == "time" else 1
        self.times: list[float] = []
        self.step_peak_mib = float("nan")
        self.absolute_peak_mib = float("nan")
        self._start = 0.0

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps

    def begin(self) -> None:
        self.probe.mark()
        self._start = time.perf_counter()

    def end(self) -> None:
        elapsed = time.perf_counter() - self._start
        if self.phase == "memory" and len(self.times) == self.warmup:
            self.step_peak_mib = self.probe.peak_since_mark()
            self.absolute_peak_mib = self.probe.peak_mib()
        self.times.append(elapsed)

    def summary(self, base_mib: float) -> dict:
        """``time``: the timed steps and their median; ``memory``: the step's peaks (``base_mib``: RSS before any
        model was loaded) and whether the peak counter could be reset."""
        if len(self.times) < self.total_steps:
            raise RuntimeError(f"only {len(self.times)} of {self.total_steps} steps ran")
        if self.phase == "time":
            timed = self.times[self.warmup:]
            return {"step_seconds": timed, "median_step_s": median(timed)}
        return {"step_peak_mib": self.step_peak_mib, "process_peak_mib": self.absolute_peak_mib - base_mib,
                "exact_reset": self.probe.exact_reset, "mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_")}

    def callback(self):
        """A ``transformers.TrainerCallback`` calling :meth:`begin` / :meth:`end` around each optimizer step.

        The Trainer fetches and collates a step's batch *before* ``on_step_begin``; ``on_step_end`` comes after
        backward, clipping, the optimizer step and ``zero_grad``.
        """
        from transformers import TrainerCallback

        timer = self

        class StepTiming(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer.begin()

            def on_step_end(self, args, state, control, **kwargs):
                timer.end()

        return StepTiming()


class VisionCounter:
    """Counts the images a vision tower encodes (rows of its pixel input), through a forward pre-hook.

    ``per_pair(steps, per_input)`` is how many times each pair's visual input was encoded per step, where
    ``per_input`` is the number of vision-tower images one input makes (a video's frames; an anyres image's
    crops). A frozen vision encoder needs 1; recomputation in backward would show up as more.
    """

    def __init__(self, *towers):
        self.images = 0
        for tower in towers:
            tower.register_forward_pre_hook(self._count)

    def _count(self, module, inputs):
        if inputs and hasattr(inputs[0], "shape"):
            self.images += int(inputs[0].shape[0])

    def per_pair(self, steps: int, per_input: int) -> float:
        return self.images / max(1, steps) / max(1, per_input)


def log_recorder(logs: list[dict]):
    """A ``TrainerCallback`` that appends every ``logs`` dict the Trainer emits to ``logs``."""
    from transformers import TrainerCallback

    class LogRecorder(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is not None:
                found.append(dict(logs))

    found = logs
    return LogRecorder()


def machine_note() -> str:
    """CPU count and the 1-minute load average: a shared machine's load changes every timing."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPU cores, 1-min load average {load:.2f}"


@contextlib.contextmanager
def report_output(json_path: str | None, work_dir: str | None = None) -> Iterator[Any]:
    """Claim ``--json`` before the benchmark runs (:func:`savi_plugin.data.outputs.claim`): a new file, or a report
    an earlier ``savi bench`` wrote (replaced whole); a file of the user's, or the benchmark's own ``--work-dir``,
    is refused in one line before any work, and the file stays locked while the
    benchmark runs. Yields the claimed output, or None without ``--json``."""
    if not json_path:
        yield None
        return
    from savi_plugin.data.outputs import check_apart, claim

    check_apart({"--json": json_path, "--work-dir": work_dir})

    with claim(json_path, command="savi bench", output_name="--json", replace_ours=True,
               inside=work_dir) as claimed:  # a report inside the benchmark's own work folder is its own
        yield claimed


def finish(report: dict, output, valid: bool, error: str) -> int:
    """End a benchmark command: write ``report`` to the claimed ``--json`` output (:func:`report_output`) when
    given; exit 1 with ``error`` when the comparison is not valid (the two sides computed different results),
    else 0."""
    if output is not None:
        from savi_plugin.data.outputs import write_json

        write_json(output.path, report)
        output.write_mark()
    if not valid:
        print(f"error: {error}")
        return 1
    return 0
