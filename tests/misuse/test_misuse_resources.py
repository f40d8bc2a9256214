"""Misuse: files that cost more than they say, decoders that fail, and a full disk.

* The pixel cap does not trust the container header: an MJPEG stream that declares 64 x 64 and carries
  12000 x 12000 frames is refused from each packet's own JPEG header, before a frame is decoded -- by both
  decoders, in generation and in training -- and peak memory does not grow with the real size.
* A video that fails only when decoded (data damaged after a sound header, a PNG named ``.mp4``) is skipped and
  counted by training with ``bad_records=skip`` (a resume passes it again); a clip decord cannot read but PyAV
  can is read by falling back to PyAV.
* A full disk (a real one, a small tmpfs, when this machine lets us mount one; a file size limit otherwise)
  ends the command with one line naming the file, no traceback.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from misuse_kit import (assert_one_line_error, clip, damaged_after_header, pair, png_named_mp4, qa_item, savi,
                        write_mjpeg)

from savi_plugin.video.decode import VideoDecodeError, read_frames
from tests.builders import VIDEO_BACKENDS, needs_decord, write_jsonl


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def lying_mjpeg(tmp_path_factory) -> Path:
    """Declares (and starts with) 64 x 64 frames, then carries 12000 x 12000 ones (~216 MB each decoded)."""
    path = tmp_path_factory.mktemp("lie") / "small_header.mkv"
    return write_mjpeg(path, 64, 64, sizes=[(64, 64)] * 2 + [(12000, 12000)] * 6)


@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_the_pixel_cap_reads_each_frame_not_the_header(backend, lying_mjpeg):
    before = peak_mb()
    with pytest.raises(VideoDecodeError) as err:
        read_frames(lying_mjpeg, 4, backend=backend)
    assert "12000x12000" in str(err.value) and "larger than the stream header declares" in str(err.value)
    assert peak_mb() - before < 150, "memory grew with the real frame size"


def test_a_custom_cap_holds_for_frames_after_the_first(tmp_path):
    from savi_plugin.video.decode import _picker, _read_pyav

    path = write_mjpeg(tmp_path / "v.mkv", 64, 64, sizes=[(64, 64), (256, 256)])
    with pytest.raises(VideoDecodeError, match="256x256"):
        _read_pyav(path, _picker(path, 2, None, None, "uniform", None), cap=128 * 128)


def test_generation_skips_the_lying_video_and_keeps_the_good_one(lying_mjpeg, tiny_llava_onevision, tmp_path,
                                                                 capsys):
    manifest = write_jsonl(tmp_path / "qa.jsonl", [qa_item("good", clip(tmp_path / "good.mp4")),
                                                   qa_item("bomb", lying_mjpeg)])
    out = tmp_path / "pairs.jsonl"
    before = peak_mb()
    code, _, err = savi(capsys, "generate", "--generator", "rrpo", "--model", tiny_llava_onevision, "--input",
                        manifest, "--output", out, "--num-frames", "4", "--no-progress", "--option",
                        "answer_format=raw", "--option", "max_new_tokens=6")
    assert code == 0, err
    assert peak_mb() - before < 400
    report = json.loads(out.with_name("pairs.jsonl.report.json").read_text())
    (bomb,) = [e for e in report["failed"] if e["item"] == "bomb"]
    assert bomb["reason"] == "decode_error" and "12000x12000" in bomb["detail"]


# ------------------------------------------------------------------------------------------------ training
def _train(data: Path, out: Path, model, resume: bool = False, **training) -> dict:
    from savi_plugin.training.run import run_training

    options = dict(loss_type="rrpo", bad_records="skip", num_frames=4, per_device_train_batch_size=2,
                   max_steps=2, save_strategy="no", use_cpu=True, disable_tqdm=True, report_to="none",
                   learning_rate=1e-3)
    return run_training(model=model, data=data, output_dir=out, training={**options, **training}, resume=resume)


@pytest.fixture(scope="module")
def broken_videos(tmp_path_factory, lying_mjpeg) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    good = clip(folder / "good.mp4", frames=8)
    return {"good": good, "good2": clip(folder / "good2.mp4", frames=8, seed=3),
            "damaged": damaged_after_header(folder / "damaged.mp4", good),
            "png": png_named_mp4(folder / "png.mp4"), "bomb": lying_mjpeg}


@pytest.mark.parametrize("bad,reason", [("damaged", "bad_video"), ("png", "too_few_frames"),
                                        ("bomb", "bad_video")])
def test_training_skips_a_video_that_fails_only_when_decoded(bad, reason, broken_videos, tiny_llava_onevision,
                                                             tmp_path):
    v = broken_videos
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair("g1", v["good"]), pair(bad, v[bad]),
                                                  pair("g2", v["good2"]), pair("g3", v["good"], "green")])
    result = _train(data, tmp_path / "out", tiny_llava_onevision)
    assert result["global_step"] == 2
    report = json.loads(Path(result["report"]).read_text())["dataset"]
    skipped = [s for s in report["skipped_records"] if s["line"] == 2]
    assert len(skipped) == 1 and skipped[0]["reason"] == reason, report
    assert report["skipped_by_reason"] == {reason: 1}


def test_a_resume_passes_the_broken_video_again(broken_videos, tiny_llava_onevision, tmp_path):
    v = broken_videos
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair("g1", v["good"]), pair("bad", v["damaged"]),
                                                  pair("g2", v["good2"]), pair("g3", v["good"], "green")])
    out = tmp_path / "out"
    steps = dict(save_strategy="steps", save_steps=1)
    assert _train(data, out, tiny_llava_onevision, max_steps=1, **steps)["global_step"] == 1
    resumed = _train(data, out, tiny_llava_onevision, max_steps=3, resume=True, **steps)  # epoch 2: "bad" again
    assert resumed["global_step"] == 3
    report = json.loads(Path(resumed["report"]).read_text())["dataset"]
    assert [s["line"] for s in report["skipped_records"]] == [2]


@needs_decord
def test_a_clip_decord_cannot_read_is_read_by_pyav(tmp_path):
    path = clip(tmp_path / "tiny16.mp4", size=16, frames=8)
    video = read_frames(path, 4, backend="decord")  # decord fails on 16 x 16 H.264; PyAV takes over
    assert video.frames.shape == (4, 16, 16, 3)


@needs_decord
def test_both_decoders_failing_names_both(broken_videos):
    with pytest.raises(VideoDecodeError) as err:
        read_frames(broken_videos["damaged"], 4)
    assert "decord:" in str(err.value) and "pyav:" in str(err.value)


@pytest.mark.parametrize("backend", ["llava_onevision", "qwen2_vl"])
def test_mixed_resolutions_in_one_batch_train(backend, tiny_llava_onevision, tiny_qwen2_vl, tmp_path):
    model = tiny_llava_onevision if backend == "llava_onevision" else tiny_qwen2_vl
    small, wide = clip(tmp_path / "small.mp4", size=32), clip(tmp_path / "wide.mp4", size=48, width=64, seed=2)
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair("a", small), pair("b", wide), pair("c", wide, "green"),
                                                  pair("d", small, "green")])
    result = _train(data, tmp_path / "out", model, bad_records="raise")
    assert result["global_step"] == 2 and result["skipped"] == 0
    assert all(h["loss"] is not None for h in json.loads(Path(result["report"]).read_text())["log_history"]
               if "loss" in h)


# ------------------------------------------------------------------------------------------------ full disk
def _shards(tmp_path: Path, n: int = 400) -> Path:
    (tmp_path / "v.mp4").write_bytes(b"")  # the video its records name, beside it (merge refuses a shard whose doesn't)
    records = [pair(f"p{i}", "v.mp4", answer=" ".join(["red"] * 50)) for i in range(n)]
    return write_jsonl(tmp_path / "big.shard-00000-of-00001.jsonl", records)


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    return subprocess.call(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           stderr=subprocess.DEVNULL) == 0


@pytest.mark.parametrize("how", ["file-size-limit", "full-tmpfs"])
def test_a_full_disk_is_one_line_naming_the_file(how, tmp_path):
    shard = _shards(tmp_path)
    if how == "full-tmpfs":
        target = tmp_path / "small_disk"
        if not _tmpfs(target, "64k"):
            pytest.skip("cannot mount a tmpfs here (not root)")
        preexec = None
    else:
        target = tmp_path / "out"
        target.mkdir()

        def preexec():  # a 64 KiB file size limit; EFBIG instead of SIGXFSZ
            import signal

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    try:
        proc = subprocess.run([sys.executable, "-m", "savi_plugin", "generate", "merge",
                               str(target / "merged.jsonl"), str(shard)], capture_output=True, text=True,
                              preexec_fn=preexec, timeout=120)
        assert proc.returncode == 1, proc.stderr
        line = assert_one_line_error(proc.stderr, str(target / "merged.jsonl"), "re-run")
        if how == "full-tmpfs":
            assert "no space left" in line and "free space" in line
        else:  # freeing space would not help: the advice names the limit
            assert "file too large" in line and "ulimit -f" in line and "free space" not in line
        assert not (target / "merged.jsonl").exists() and not (target / "merged.jsonl.tmp").exists()
    finally:
        if how == "full-tmpfs":
            subprocess.call(["umount", str(target)])


def _limited(size: int):
    def preexec():
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return preexec


@pytest.mark.parametrize("command", ["generate", "train"])
def test_a_file_size_limit_mid_run_is_one_line_naming_the_output(command, tiny_llava_onevision, synthetic_samples,
                                                                  tmp_path):
    manifest = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    if command == "generate":
        out = tmp_path / "pairs.jsonl"
        argv = ["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--input", str(manifest),
                "--output", str(out), "--num-frames", "4", "--batch-size", "1", "--no-progress",
                "--option", "answer_format=raw", "--option", "max_new_tokens=6"]
        limit = 2048  # a few records
    else:
        out = tmp_path / "out"
        data = write_jsonl(tmp_path / "pairs.jsonl", [pair("a", clip(tmp_path / "v.mp4"))])
        recipe = tmp_path / "r.yaml"
        recipe.write_text(json.dumps({"model": {"path": str(tiny_llava_onevision), "num_frames": 4},
                                      "train": {"max_steps": 1, "use_cpu": True, "disable_tqdm": True,
                                                "save_strategy": "steps", "save_steps": 1}}))
        argv = ["train", str(recipe), "--data", str(data), "--output-dir", str(out)]
        limit = 16 * 1024  # the configuration fits, a checkpoint does not
    proc = subprocess.run([sys.executable, "-m", "savi_plugin", *argv], capture_output=True, text=True,
                          preexec_fn=_limited(limit), timeout=600, env={**__import__("os").environ,
                                                                          "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = assert_one_line_error(proc.stderr, str(out), "file too large")
    if command == "train":  # the file the limit cut (safetensors removes it), not the run folder (23 E, row 28)
        assert line.startswith(f"error: {out / 'checkpoint-1' / 'adapter_model.safetensors'}: file too large"), line
