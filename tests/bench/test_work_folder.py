"""A benchmark without ``--work-dir`` builds in a temporary folder of the output layer
(:func:`savi_plugin.bench.fixtures.work_folder` over :func:`savi_plugin.data.outputs.temp_folder`), removed when it
finishes and when it is stopped: a stopped ``savi bench trl`` left 252 MB in /tmp while saying "nothing was
written", and a finished ``savi bench decode`` kept its clip (red team 23, row 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from savi_plugin.cli.bench import MODULES
from tests.builders import needs_decord

#: per benchmark: its cheapest flags, and the function it calls first with its work folder built
CASES = {
    "decode": (["--frames", "4", "--size", "16", "--samples", "2", "--repeats", "1", "--keyframe-interval", "0"],
               "savi_plugin.bench.fixtures.make_video"),
    "generation": (["--videos", "1", "--frames", "2", "--image-size", "16", "--questions", "1",
                    "--max-new-tokens", "1", "--repeats", "1", "--hidden", "64", "--layers", "1",
                    "--intermediate", "0", "--vocab", "0", "--vision-hidden", "0", "--vision-layers", "0"],
                   "savi_plugin.bench.fixtures.build_bench_model"),
    "gpu": (["--scale", "small", "--device", "cpu", "--dtype", "float32", "--warmup", "0", "--steps", "1"],
            "savi_plugin.bench.gpu.build_checkpoint"),
    "train-step": ([], "savi_plugin.bench.train_step.prepare"),
    "trl": ([], "savi_plugin.bench.trl_dpo.prepare"),
}


@pytest.fixture
def scratch_tmp(tmp_path, monkeypatch):
    """The system's temporary folder, for this test only."""
    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def left(folder):
    """What savi left in ``folder`` (torch may cache its own things there)."""
    return sorted(p.name for p in folder.iterdir() if "savi" in p.name)


def test_every_bench_is_covered():
    assert set(CASES) == set(MODULES)


@pytest.mark.parametrize("bench", sorted(CASES))
def test_a_stopped_bench_leaves_no_work_folder(bench, scratch_tmp, monkeypatch, capsys):
    """SIGTERM once the work folder holds something: exit 143 and the folder is gone."""
    from savi_plugin.cli import main

    if bench == "trl":
        pytest.importorskip("trl")
    argv, first_user = CASES[bench]
    seen = []

    def stop(first, *args, **kwargs):
        work = Path(getattr(first, "work_dir", first))  # prepare(args) or f(work, ...)
        (work / "built.bin").write_bytes(b"x" * 1024)
        seen.append(work)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM did not stop the benchmark")

    monkeypatch.setattr(first_user, stop)
    assert main(["bench", bench, *argv]) == 143
    assert len(seen) == 1 and seen[0].parent == scratch_tmp
    assert left(scratch_tmp) == []
    assert "terminated (SIGTERM)" in capsys.readouterr().err


@needs_decord
@pytest.mark.parametrize("bench", ["decode", "generation"])
def test_a_finished_bench_leaves_no_work_folder(bench, scratch_tmp, capsys):
    from savi_plugin.cli import main

    assert main(["bench", bench, *CASES[bench][0]]) == 0
    assert left(scratch_tmp) == []


def test_a_given_work_dir_is_kept(tmp_path, capsys):
    from savi_plugin.cli import main

    assert main(["bench", "decode", *CASES["decode"][0], "--work-dir", str(tmp_path / "w")]) == 0
    assert any(p.suffix == ".mp4" for p in (tmp_path / "w").iterdir())


def test_sigterm_to_the_savi_process_removes_its_work_folder(tmp_path):
    """The real signal from outside, as ``timeout`` sends it, during reads that would run for ever."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "savi_plugin", "bench", "decode", "--frames", "10", "--size", "16",
                             "--samples", "1", "--repeats", "4294967295", "--keyframe-interval", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(tmp_path.glob(".savi_bench_decode.*/*.mp4")):  # the clip is written: reads have begun
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert left(tmp_path) == []
