"""``savi bench decode`` and the ``savi bench`` command at tiny sizes: real decord and PyAV on a real mp4."""

from __future__ import annotations

import math

import pytest

from tests.builders import needs_decord


@needs_decord
def test_decode_benchmark_reads_real_frames(tmp_path, capsys):
    from savi_plugin.bench import decode

    args = decode.build_parser().parse_args(["--frames", "24", "--size", "32", "--samples", "4", "--repeats", "1",
                                             "--keyframe-interval", "0", "8", "--work-dir", str(tmp_path)])
    result = decode.run(args)
    assert len(result["clips"]) == 2
    for clip in result["clips"]:
        assert [row["frames"] for row in clip["rows"]] == [4, 24]
        for row in clip["rows"]:
            for backend in decode.BACKENDS:
                assert row[backend]["frames"] == row["frames"]  # every requested frame came back
                assert row[backend]["frames_per_s"] > 0
            assert math.isfinite(row["ratio_decord_over_pyav"])
    out = capsys.readouterr().out
    assert "decord / pyav" in out and "keyframe every 8 frames" in out


def test_savi_bench_command(tmp_path, capsys):
    from savi_plugin.cli import main

    code = main(["bench", "decode", "--frames", "12", "--size", "32", "--samples", "3", "--repeats", "1",
                 "--keyframe-interval", "0", "--work-dir", str(tmp_path)])
    assert code == 0
    assert "uniform 3" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "nope"])


def test_savi_bench_passes_options_through():
    from savi_plugin.bench import train_step
    from savi_plugin.cli.bench import _to_argv

    argv = _to_argv(train_step.build_parser(), {"repeats": 3, "layers": 2, "gradient_checkpointing": False})
    args = train_step.build_parser().parse_args(argv)
    assert (args.repeats, args.layers, args.gradient_checkpointing) == (3, 2, False)


def test_a_sample_larger_than_the_clip_is_refused_before_any_clip_is_written(tmp_path, capsys):
    from savi_plugin.cli import main

    work = tmp_path / "work"
    code = main(["bench", "decode", "--frames", "12", "--size", "32", "--samples", "4", "13", "--repeats", "1",
                 "--work-dir", str(work)])
    err = capsys.readouterr().err
    assert code == 2 and "--samples: 13 is more than the clip's 12 frames" in err and "Traceback" not in err
    assert not work.exists()


import pytest  # noqa: E402


@pytest.mark.parametrize("argv, flag, words", [
    (["--size", "5000"], "--size", "5000x5000 frames are above the decoder's cap of 16777216 pixels"),
    (["--size", "4294967294"], "--size", "frames are above the decoder's cap"),
    (["--frames", "4294967295", "--samples", "1"], "--frames", "above the per-clip budget"),
])
def test_a_clip_the_decoder_would_refuse_is_refused_before_it_is_written(argv, flag, words, tmp_path, monkeypatch,
                                                                          capsys):
    """Pass 18 B #9: ``--size 5000`` encoded the whole clip, then failed on its own file; ``--size 4294967294``
    ended in numpy's words. A size or length the decode caps refuse is one line at its flag, before any work."""
    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["bench", "decode", *argv, "--work-dir", "w"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag}: ") and words in err[0], err
    assert list(tmp_path.iterdir()) == []
