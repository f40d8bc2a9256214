"""Crash safety: jobs killed with SIGKILL at random points resume to exactly the uninterrupted result.

This extends tests/test_generators_rrpo.py (generation killed 3 times) and tests/test_trainer_resume.py
(training killed once, right after a complete checkpoint, resumed in-process): here each job is killed at
least 5 times at randomly drawn points, chained -- every resumed run is killed again -- through the
entry points users call (``run_generation``; ``run_training(resume=True)``), including kills in the middle of
writing a checkpoint (a torn ``checkpoint-k`` that resuming must not pick).

Every run is a real separate process killed with SIGKILL. The processes are forked by a multiprocessing
*forkserver* that imported torch/transformers/peft once, so a run starts in about a second instead of the
10-20 s a fresh interpreter needs on 2 cores. ``SAVI_CRASH_SEED`` picks other random kill points.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.builders import lora_policy, write_answer_pairs

SEED = int(os.environ.get("SAVI_CRASH_SEED", "20240611"))
KILLS = 5
PRELOAD = ["torch", "transformers", "peft", "av", "decord", "savi_plugin.generators.runner",
           "savi_plugin.generators.rrpo", "savi_plugin.training.run", "savi_plugin.training.trainer",
           "savi_plugin.models.backends.llava_onevision"]


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def complete_lines(path: Path) -> int:
    """The number of newline-terminated lines of ``path`` (0 when it does not exist yet)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def run_until(ctx, target, kwargs: dict, ready=None, timeout: float = 240.0) -> int:
    """Run ``target(**kwargs)`` in a forked process; SIGKILL it the moment ``ready()`` is true.

    Returns the exit code: ``-SIGKILL`` when killed, 0 when the run finished first. ``ready=None`` waits for
    the run to finish and fails the test if it does not exit cleanly.
    """
    proc = ctx.Process(target=target, kwargs=kwargs)
    proc.start()
    deadline = time.time() + timeout
    while proc.is_alive() and time.time() < deadline:
        if ready is not None and ready():
            os.kill(proc.pid, signal.SIGKILL)  # no clean shutdown: like a preempted or OOM-killed job
            break
        time.sleep(0.002)
    proc.join(timeout=60)
    if proc.exitcode is None:
        proc.kill()
        pytest.fail(f"{target.__name__} did not finish within {timeout} s")
    if ready is None:
        assert proc.exitcode == 0, f"{target.__name__} failed with exit code {proc.exitcode}"
    return proc.exitcode


# ------------------------------------------------------------------------------------------------ generation
GEN_OPTIONS = {"answer_format": "raw", "num_perturbations": 2, "max_new_tokens": 6}


def _records(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), "the output ends with a partial line"
    lines = data.decode("utf-8").splitlines()
    for line in lines:
        json.loads(line)  # every line is a complete JSON object
    return lines


def test_generation_killed_at_random_points_resumes_to_exactly_the_same_records(
        forkserver, tiny_llava_onevision, synthetic_samples, tmp_path):
    from savi_plugin.generators import run_generation

    manifest = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    common = dict(generator="rrpo", model=str(tiny_llava_onevision), inputs=str(manifest), num_frames=4,
                  batch_size=1, seed=0, options=GEN_OPTIONS, progress=False)
    reference = tmp_path / "reference.jsonl"
    run_until(forkserver, run_generation, {**common, "output": str(reference)})
    expected = _records(reference)
    n_items = len(synthetic_samples)
    assert len(expected) >= n_items  # a random-weight model errs on (nearly) every perturbed video

    out = tmp_path / "killed.jsonl"
    progress = out.with_name("killed.jsonl.progress.jsonl")  # line 1: the configuration, then one line per item
    rng = random.Random(SEED)
    # Kill after k items are done -- watching the progress file -- or after the k-th item's records are
    # written but (maybe) before its progress line -- watching the output file.
    points = sorted(rng.sample(range(1, n_items - 1), KILLS))
    torn_at = rng.randrange(KILLS)
    kills, seen = [], []
    for n, k in enumerate(points):
        if rng.random() < 0.5:
            watch, target = progress, 1 + k
        else:
            watch, target = out, max(1, round(len(expected) * k / n_items))
        target = max(target, complete_lines(watch) + 1)  # the next kill is always later in the run
        code = run_until(forkserver, run_generation, {**common, "output": str(out)},
                         ready=lambda w=watch, t=target: complete_lines(w) >= t)
        kills.append(code == -signal.SIGKILL)
        lines = _records(out) if out.exists() else []
        assert len(lines) == len(set(lines)), "a resumed run duplicated records"
        assert set(lines) <= set(expected), "a killed run wrote a record the full run does not have"
        seen.append((watch.name, target, len(lines)))
        if n == torn_at:  # a write torn by the kill, in both files (SIGKILL rarely tears an O_APPEND write)
            with open(out, "ab") as fh:
                fh.write(expected[-1].encode()[: len(expected[-1]) // 2])
            with open(progress, "ab") as fh:
                fh.write(b'{"id": "synth-0-9", "batch": 9, "outc')
    assert sum(kills) >= KILLS, f"only {sum(kills)} of the runs were killed before finishing: {seen}"
    run_until(forkserver, run_generation, {**common, "output": str(out)})

    got = _records(out)
    assert len(got) == len(set(got)), "duplicate records after resuming"
    assert sorted(got) == sorted(expected), f"kill points {seen}"
    assert got == expected  # deterministic batches: even the order is the uninterrupted run's
    report = json.loads(out.with_name("killed.jsonl.report.json").read_text())
    full = json.loads(reference.with_name("reference.jsonl.report.json").read_text())
    assert report["complete"] and report["counts"] == full["counts"]
    assert report["records_in_output"] == len(expected)


# ------------------------------------------------------------------------------------------------ training
MAX_STEPS = 8


def _loss_curve(report_path: Path) -> dict[int, dict[str, float]]:
    history = json.loads(report_path.read_text())["log_history"]
    return {h["step"]: h for h in history if "loss" in h}


def test_training_killed_at_random_points_resumes_the_same_loss_curve(
        forkserver, tiny_llava_onevision, synthetic_samples, tmp_path):
    from safetensors.torch import load_file

    from savi_plugin.training.run import run_training

    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:6])
    common = dict(model=str(tiny_llava_onevision), data=str(data),
                  lora={"r": 4, "alpha": 8, "dropout": 0.1},  # dropout: the RNG state must be restored too
                  training=dict(loss_type="rrpo", num_frames=4, per_device_train_batch_size=2, max_steps=MAX_STEPS,
                                learning_rate=5e-3, lr_scheduler_type="cosine", save_strategy="steps",
                                save_steps=1, logging_steps=1, use_cpu=True, seed=3, disable_tqdm=True))
    reference = tmp_path / "reference"
    run_until(forkserver, run_training, {**common, "output_dir": str(reference)})
    expected = _loss_curve(reference / "train_report.json")
    assert sorted(expected) == list(range(1, MAX_STEPS + 1))

    out = tmp_path / "killed"
    rng = random.Random(SEED + 1)
    points = sorted(rng.sample(range(1, MAX_STEPS), KILLS))
    # "started": kill the moment checkpoint-k/ exists -- usually mid-save, leaving a torn checkpoint;
    # "saved": kill once its trainer_state.json (written last) is there.
    moments = [rng.choice(["started", "saved"]) for _ in points]
    moments[0] = "started"  # at least one torn checkpoint
    kills = []
    for k, moment in zip(points, moments):
        marker = out / f"checkpoint-{k}" / ("trainer_state.json" if moment == "saved" else "")
        code = run_until(forkserver, run_training, {**common, "output_dir": str(out), "resume": True},
                         ready=lambda m=marker: m.exists())
        kills.append(code == -signal.SIGKILL)
    assert all(kills), f"a run finished before its kill point: {list(zip(points, moments, kills))}"
    run_until(forkserver, run_training, {**common, "output_dir": str(out), "resume": True})

    got = _loss_curve(out / "train_report.json")
    assert sorted(got) == list(range(1, MAX_STEPS + 1))
    for step in expected:
        for name in ("loss", "rewards/margins", "kl/chosen", "grad_norm"):
            assert abs(got[step][name] - expected[step][name]) <= 1e-6, (step, name, points, moments)
    ours, theirs = load_file(out / "adapter_model.safetensors"), load_file(reference / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=0, msg=name)


# ------------------------------------------------------------------------------------------------ non-finite steps
# tests/training/test_trainer.py checks a NaN loss at gradient_accumulation_steps=1 and skip_nonfinite=False; these add
# a NaN in ONE micro-batch of an accumulated step and a NaN gradient under a finite loss.
def _guarded_trainer(model_path, data, output_dir, **overrides):
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.trainer import DPOTrainer

    options = dict(output_dir=str(output_dir), num_frames=4, per_device_train_batch_size=2, learning_rate=5e-3,
                   lr_scheduler_type="constant", logging_steps=1, save_strategy="no", use_cpu=True, seed=0,
                   disable_tqdm=True, max_steps=3)
    backend = lora_policy(model_path, r=4, alpha=8)
    return backend, DPOTrainer(backend, PreferenceConfig(**{**options, **overrides}), train_dataset=str(data))


def _trainable(backend) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in backend.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("poison", ["loss_in_one_micro_batch", "gradient"])
def test_a_non_finite_step_is_skipped_counted_and_never_reaches_the_weights(poison, tiny_llava_onevision,
                                                                          synthetic_samples, tmp_path):
    from transformers import TrainerCallback

    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:8])
    accumulation = 2 if poison == "loss_in_one_micro_batch" else 1
    backend, trainer = _guarded_trainer(tiny_llava_onevision, data, tmp_path / "out",
                                        gradient_accumulation_steps=accumulation)
    snapshots = [_trainable(backend)]

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            snapshots.append(_trainable(backend))

    trainer.add_callback(Snapshot())
    calls = {"n": 0}
    if poison == "loss_in_one_micro_batch":
        # Forward calls per micro-batch: policy, then reference. Call 7 = the policy pass of the 2nd micro-batch
        # of step 2: its loss is NaN while the 1st micro-batch of the same step is fine.
        def hook(module, args, output):
            calls["n"] += 1
            if calls["n"] == 7:
                hidden = output[0] if isinstance(output, tuple) else output
                return (hidden * float("nan"), *output[1:]) if isinstance(output, tuple) else hidden * float("nan")
            return output

        backend.decoder().language_model.layers[0].register_forward_hook(hook)
    else:
        name, param = next((n, p) for n, p in backend.model.named_parameters() if p.requires_grad)

        def hook(grad):  # step 2's backward: the loss is finite, one gradient is not
            calls["n"] += 1
            return grad * float("inf") if calls["n"] == 2 else grad

        param.register_hook(hook)
    trainer.train()

    assert trainer.nonfinite_steps == 1
    assert all(torch.equal(snapshots[1][n], snapshots[2][n]) for n in snapshots[1]), "step 2 moved the weights"
    assert any(not torch.equal(snapshots[0][n], snapshots[1][n]) for n in snapshots[0])  # steps 1 and 3 did
    assert any(not torch.equal(snapshots[2][n], snapshots[3][n]) for n in snapshots[2])
    assert all(torch.isfinite(p).all() for p in snapshots[-1].values())
    state = trainer.optimizer.state[next(p for p in backend.model.parameters() if p.requires_grad)]
    assert int(state["step"]) == 2  # Adam's state saw 2 of the 3 steps
    logged = [h["nonfinite_steps"] for h in trainer.state.log_history if "nonfinite_steps" in h]
    assert logged == [0, 1, 1]


# ------------------------------------------------------------------------------------------------ Ctrl-C
def _interrupt(proc, ready, timeout: float = 300.0, signum=signal.SIGINT) -> tuple[int, str]:
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "interrupted"),
                                                 (signal.SIGTERM, 143, "terminated (SIGTERM)")], ids=["INT", "TERM"])
def test_ctrl_c_in_generate_is_one_line_saying_how_to_resume(signum, code, said, tiny_llava_onevision,
                                                             synthetic_samples, tmp_path):
    """Ctrl-C, and SIGTERM (``kill``, a scheduler's stop) alike: one line, the lock released, a re-run resumes."""
    from misuse_kit import savi_process

    manifest = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    out = tmp_path / "pairs.jsonl"
    argv = ["generate", "--generator", "rrpo", "--model", tiny_llava_onevision, "--input", manifest, "--output",
            out, "--num-frames", "4", "--batch-size", "1", "--no-progress", "--option", "answer_format=raw",
            "--option", "max_new_tokens=6"]
    got, err = _interrupt(savi_process(*argv), lambda: complete_lines(out.with_name("pairs.jsonl.progress.jsonl")) >= 2,
                          signum=signum)
    assert got == code and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == f"{said}: finished records are kept; re-run the same command to resume"
    assert not (tmp_path / "pairs.jsonl.lock").exists()
    done = complete_lines(out.with_name("pairs.jsonl.progress.jsonl")) - 1
    proc = savi_process(*argv)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out.with_name("pairs.jsonl.report.json").read_text())
    assert report["complete"] and report["throughput"]["items"] == len(synthetic_samples) - done


#: a job in its own process (no model: it starts in a second) holding a claimed output with a temporary file open,
#: under the ``savi`` boundary; it prints ``ready`` once both exist
_HELD_JOB = """
import sys, time
from savi_plugin.cli import run_guarded
from savi_plugin.data.outputs import atomic_path, claim

def job():
    with claim(sys.argv[1], command="savi generate", config={}) as claimed:
        claimed.write_mark()
        with atomic_path(sys.argv[1]) as tmp:
            tmp.write_text("half a result")
            print("ready", flush=True)
            time.sleep(120)

sys.exit(run_guarded(job, "generate"))
"""


@pytest.mark.parametrize("signum, code, said", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                 (signal.SIGHUP, 129, "hung up (SIGHUP)"),
                                                 (signal.SIGQUIT, 131, "quit (SIGQUIT)")], ids=["TERM", "HUP", "QUIT"])
def test_every_stop_signal_is_one_line_with_its_temporaries_removed_and_lock_released(signum, code, said, tmp_path):
    """Each signal that asks a command to stop (SIGTERM, SIGHUP, and SIGQUIT -- Ctrl-\\ at a terminal; red team 12,
    row 34: Python's default action dumped core with no line and left the lock file) stops it as Ctrl-C does: one
    line saying what is kept, exit 128 + the signal, the temporary file removed, the lock released."""
    import subprocess
    import sys

    out = tmp_path / "pairs.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _HELD_JOB, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout.readline().strip() == "ready", proc.communicate()[1][-2000:]
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, (proc.returncode, err[-2000:])
    assert err.strip().splitlines() == [f"{said}: nothing was written (the new output {out} held no result yet and "
                                        f"was removed); re-run the command"]
    assert list(tmp_path.iterdir()) == []  # no lock, no temporary (and no mark: the job held no result yet)


@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "interrupted"),
                                                 (signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                 (signal.SIGHUP, 129, "hung up (SIGHUP)")], ids=["INT", "TERM", "HUP"])
def test_a_stop_that_lands_inside_an_import_is_still_the_stop(signum, code, said, capsys):
    """A signal that arrives inside an import which turns it into another exception (what a C extension's
    initialisation does: ``ImportError: initialization failed``) is reported as the stop it was, not as an
    unexpected error; an error with no signal before it stays an error."""
    from savi_plugin.cli import run_guarded

    def loading_model():
        try:  # the signal really arrives: the boundary's handler runs, then the import masks it
            os.kill(os.getpid(), signum)
            time.sleep(5)
        except BaseException as exc:  # noqa: BLE001 - what the failing import does
            raise ImportError("initialization failed") from exc
        raise AssertionError("the signal did not arrive")

    assert run_guarded(loading_model, "generate") == code
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"{said}: nothing was written; re-run the command"]  # no output claimed yet
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the boundary's handlers are gone
    assert run_guarded(lambda: (_ for _ in ()).throw(ImportError("initialization failed")), "generate") == 1
    assert "error: ImportError: initialization failed" in capsys.readouterr().err


@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "interrupted"),
                                                 (signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                 (signal.SIGHUP, 129, "hung up (SIGHUP)")], ids=["INT", "TERM", "HUP"])
def test_a_stop_that_lands_inside_a_finalizer_still_stops_the_command(signum, code, said, capsys):
    """Pass 18 A #16: a SIGTERM that landed in ``regex``'s ``SetBase.__del__`` was printed as "Exception ignored in"
    and swallowed: the generation went on to finish all 400 items. A stop raised inside a finalizer is raised again
    where it can stop the command; an error in a finalizer stays Python's to print and ignore."""
    import gc

    from savi_plugin.cli import run_guarded

    went_on = []

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signum)
            for _ in range(100_000):  # the handler runs here, inside the finalizer
                pass

    def generating():
        Finalized()
        gc.collect()
        time.sleep(1)  # where the stop lands again at the latest
        went_on.append(True)
        return 0

    assert run_guarded(generating, "generate") == code
    err = capsys.readouterr().err
    assert not went_on and err.strip().splitlines()[-1] == f"{said}: nothing was written; re-run the command", err

    class Failing:
        def __del__(self):
            raise ValueError("a library's own finalizer error")

    def plain():
        Failing()
        return 0

    seen = []
    previous, sys.unraisablehook = sys.unraisablehook, lambda unraisable: seen.append(unraisable.exc_value)
    try:
        assert run_guarded(plain, "generate") == 0
    finally:
        sys.unraisablehook = previous
    assert [str(exc) for exc in seen] == ["a library's own finalizer error"]  # passed on to the hook before ours


def test_a_hangup_ignored_when_the_command_starts_stays_ignored():
    """``nohup savi train ...``: the terminal closing must not stop a command its user detached from it."""
    from savi_plugin.cli import run_guarded

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        seen = []
        assert run_guarded(lambda: seen.append(signal.getsignal(signal.SIGHUP)) or os.kill(os.getpid(), signal.SIGHUP),
                           "train") == 0
        assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_ctrl_c_in_train_is_one_line_naming_resume(tiny_llava_onevision, synthetic_samples, tmp_path):
    from misuse_kit import savi_process

    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:4])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"model": {"path": str(tiny_llava_onevision), "num_frames": 4},
                                  "train": {"max_steps": 200, "per_device_train_batch_size": 1, "save_steps": 1,
                                            "save_strategy": "steps", "use_cpu": True, "disable_tqdm": True}}))
    out = tmp_path / "out"
    proc = savi_process("train", recipe, "--data", data, "--output-dir", out)
    code, err = _interrupt(proc, lambda: (out / "checkpoint-1" / "trainer_state.json").exists())
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert "re-run the same command to continue" in err.strip().splitlines()[-1]
    assert not (out / "train_report.json").exists() and not (out / ".savi.lock").exists()


# ------------------------------------------------------------------------------------------------ align resume
def test_align_killed_during_training_resumes_from_the_last_checkpoint(tiny_llava_onevision, synthetic_samples,
                                                                       tmp_path):
    from misuse_kit import savi_process

    from savi_plugin.cli import main

    manifest = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    recipe = tmp_path / "align.yaml"
    recipe.write_text(json.dumps({
        "model": {"path": str(tiny_llava_onevision), "num_frames": 4},
        "data": {"qa": str(manifest)},
        "generate": {"generator": "rrpo", "batch_size": 5, "limit": 5,
                     "options": {"answer_format": "raw", "num_perturbations": 1, "max_new_tokens": 6}},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"max_steps": 4, "per_device_train_batch_size": 1, "save_strategy": "steps", "save_steps": 1,
                  "use_cpu": True, "disable_tqdm": True, "logging_steps": 1},
        "align": {"iterations": 1, "eval_every_iteration": False}}))
    run = tmp_path / "run"
    train = run / "iter_0" / "train"
    proc = savi_process("align", recipe, "--out", run)
    deadline = time.time() + 300
    while not (train / "checkpoint-2" / "trainer_state.json").exists() and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.02)
    proc.kill()  # SIGKILL during training
    _, err = proc.communicate()
    assert (train / "checkpoint-2" / "trainer_state.json").exists(), err[-3000:]
    assert not (train / "train_report.json").exists()  # a killed run never leaves a report beside its adapter
    kept = {p.name: p.stat().st_mtime_ns for p in (train / "checkpoint-1").iterdir()}

    assert main(["align", str(recipe), "--out", str(run)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (train / "checkpoint-1").iterdir()} == kept  # not retrained
    report = json.loads((train / "train_report.json").read_text())
    assert report["global_step"] == 4 and (train / "adapter_model.safetensors").exists()
    assert not (train / ".adapter.tmp").exists()
    assert json.loads((run / "manifest.json").read_text())["iterations"][0]["next_model"]


@pytest.mark.parametrize("command, chosen", [("align", True), ("demo", True), ("align", False), ("ablate", False)])
def test_a_stopped_run_in_a_folder_it_chose_itself_names_the_out_that_resumes_it(command, chosen, tmp_path,
                                                                                 monkeypatch, capsys):
    """Pass 21 C #17: ``savi align`` without ``--out`` stopped said "re-run the same command (same --out)", which
    makes a new timestamped folder and starts over; the line names the folder to pass."""
    from savi_plugin import cli
    from savi_plugin.data.outputs import claim

    monkeypatch.chdir(tmp_path)
    folder = f"savi_runs/{command}-x-20260101-000000"

    def job():
        out = cli.chose_output(folder) if chosen else folder
        with claim(out, command=f"savi {command}", config={"a": 1}, folder=True) as claimed:
            claimed.write_mark()
            (tmp_path / folder / "step.json").write_text("{}")
            raise KeyboardInterrupt()

    assert cli.run_guarded(job, command) == 130
    err = capsys.readouterr().err.strip().splitlines()
    said = f"re-run the command with --out {folder} to resume"
    assert len(err) == 1 and err[0].startswith("interrupted: ") and (said in err[0]) == chosen, err
    assert chosen or "re-run the same command (same --out) to resume" in err[0], err


#: a job holding a claimed run folder that starts a child process through one of savi's entry points (lmms-eval's
#: two callers, the bench worker) and waits on it; the child writes its pid into argv[3] and sleeps. With argv[4]
#: "off" the child is not asked to die with its parent (a system without PR_SET_PDEATHSIG)
_PARENT_OF_A_CHILD = """
import os, sys
from pathlib import Path
from savi_plugin.data import outputs

out, how, pid_file, death_signal = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
if death_signal == "off":
    outputs.children._death_signal_setter = lambda: None
code = f"import os, time; open({pid_file!r}, 'w').write(str(os.getpid())); time.sleep(120)"
with outputs.claim(out, command="savi eval suite", config={}, folder=True) as claimed:
    claimed.write_mark()
    if how == "run_judged":  # savi align's and savi eval run's evaluation
        from savi_plugin.eval.command import run_judged
        run_judged([sys.executable, "-c", code], env=dict(os.environ), output_path=out / "lmms_eval", tasks=["t"],
                   log_path=out / "lmms_eval.log")
    elif how == "suite":  # savi eval suite's runs
        from savi_plugin.eval.suite import _stream
        _stream([sys.executable, "-c", code], dict(os.environ), out / "lmms_eval.log", "base", None)
    else:  # a benchmark's worker
        from savi_plugin.bench.measure import run_worker
        run_worker("timeit", ["-n", "1", "-r", "1", code])
"""


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _wait_for(check, timeout: float = 60.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
@pytest.mark.parametrize("death_signal", ["on", "off"])
@pytest.mark.parametrize("how", ["run_judged", "suite", "worker"])
def test_a_child_of_a_killed_savi_dies_with_it_or_keeps_its_output_locked(how, death_signal, tmp_path):
    """``kill -9`` of ``savi eval suite`` or ``savi align`` during an evaluation left lmms-eval running (parent pid
    1), writing into the run folder, and the same command run again took the dead job's lock over and started a
    second lmms-eval beside it (red team 23 E, rows 12 and 48). Every child starts through
    ``outputs.start_child``: it is killed with its parent, and where that cannot be asked it holds the job's lock,
    so a second job is refused naming it until it ends."""
    import subprocess

    from savi_plugin.data.outputs import OutputLockedError, claim

    out, pid_file = tmp_path / "run", tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT_OF_A_CHILD, str(out), how, str(pid_file), death_signal],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    child = None
    try:
        assert _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()), parent.communicate()[1][-2000:]
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)  # the OOM killer, a scheduler's kill -9
        parent.wait()
        if death_signal == "on":
            assert _wait_for(lambda: not _running(child), 10), "the child outlived its killed savi"
        else:
            time.sleep(0.5)
            assert _running(child)
            with pytest.raises(OutputLockedError, match=rf"in use by another savi process \(pid {parent.pid} .*gone; "
                                                        rf"pid {child}, which it started, still runs"):
                claim(out, command="savi eval suite", config={}, folder=True)
            os.kill(child, signal.SIGKILL)
            assert _wait_for(lambda: not _running(child), 10)
        with claim(out, command="savi eval suite", config={}, folder=True):
            pass  # no process of the killed job is left: its lock is taken over
    finally:
        if child is not None and _running(child):
            os.kill(child, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, 0.5])
def test_ctrl_c_while_the_savi_command_starts_is_one_line(delay, tmp_path):
    """Pass 25 I #4: Ctrl-C half a second after ``savi generate ...`` started landed in the command-line module's
    imports (before its own boundary) and printed Python's ``KeyboardInterrupt`` traceback, the process dead by
    SIGINT. The console script catches it around that import: one line, exit 130, wherever the Ctrl-C lands once
    the console script runs (before that, in the interpreter's own start, Python alone decides)."""
    import subprocess
    import sys
    import time

    script = ("import sys; sys.argv = ['savi', 'generate', '--help']; from savi_plugin.console import main; "
              "print('ready', flush=True); sys.exit(main())")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout.readline().strip() == "ready", proc.communicate()[1][-2000:]
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it finished before the Ctrl-C: the help text, nothing else
        assert "usage: savi generate" in out and err == "", err
        return
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert err.strip().splitlines() == ["interrupted: nothing was written; re-run the command"], err[-2000:]


def test_the_console_script_catches_a_ctrl_c_inside_the_command_line_modules_import(monkeypatch, capsys):
    """The same, in-process and exact: a Ctrl-C raised while ``savi_plugin.cli`` is being imported (a finder that
    raises it, as Python's SIGINT handler does wherever the main thread is) is the one line and 130."""
    import sys

    from savi_plugin import console

    class Interrupting:
        def find_spec(self, name, path=None, target=None):
            if name == "savi_plugin.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "savi_plugin.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    assert console.main() == 130
    assert capsys.readouterr().err == console.STOPPED_AT_START


def test_the_console_scripts_line_is_the_boundarys_own_words(tmp_path, monkeypatch, capsys):
    """The console script's line for a Ctrl-C before the command started is the one the CLI's boundary writes for
    a Ctrl-C that kept nothing: both take the words from :mod:`savi_plugin.stop_lines` (defined there once), and
    that module imports nothing, so the console script stays cheap before its boundary stands."""
    import ast
    import signal

    import savi_plugin.cli as cli
    from savi_plugin import console, stop_lines

    tree = ast.parse(open(stop_lines.__file__, encoding="utf-8").read())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    from savi_plugin.data.outputs import reset_command_outputs

    monkeypatch.chdir(tmp_path)
    reset_command_outputs()  # as main() does when a command starts: no output of an earlier test's command counts
    assert cli._stopped("generate", signal.SIGINT) == 130  # no output claimed: "nothing was written"
    assert capsys.readouterr().err == console.STOPPED_AT_START
