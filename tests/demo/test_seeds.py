"""``savi demo --seeds N``: one real demo run per seed (at a reduced scale), and the mean and spread over seeds in
the table, ``results.json`` and ``demo.png``."""

import json
import os
import statistics

import pytest

from savi_plugin.cli import main
from savi_plugin.demo.report import gain

#: far below the shipped scale: this checks the per-seed runs and their summary, not the size of RRPO's gain
SMALL = ["demo.warmup_videos=40", "demo.warmup_steps=30", "demo.align_videos=40", "demo.heldout_videos=20",
         "train.num_train_epochs=1", "demo.compare_dpo=false"]


def test_seeds_run_one_demo_each_and_report_mean_and_spread(tmp_path, capsys, monkeypatch):
    import torch

    # set, so the command keeps this process's torch threads (unset, it picks one thread for the demo)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads())))
    out = tmp_path / "run"
    assert main(["demo", "--seeds", "2", "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "results.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["runs"] == {"0": "seed-0", "1": "seed-1"}
    runs = [json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in (0, 1)]
    assert runs[0]["generation"] != runs[1]["generation"] or runs[0]["before"] != runs[1]["before"]  # seeds differ

    for stage in ("before", "rrpo"):
        values = [100 * r[stage]["accuracy"] for r in runs]
        s = summary["accuracy"][stage]["all"]
        assert s["values"] == values and abs(s["mean"] - statistics.fmean(values)) < 1e-9
        assert abs(s["sd"] - statistics.stdev(values)) < 1e-9 and s["min"] == min(values)
        for group, n in runs[0]["before"]["n_per_group"].items():
            assert summary["accuracy"][stage][group]["values"] == [100 * r[stage]["per_group"][group] for r in runs]
            assert summary["n_per_group"][group] == n
    gains = [gain(r)["points"] for r in runs]
    assert summary["gain_points"]["rrpo"]["values"] == gains and "dpo" not in summary["gain_points"]

    rrpo = summary["accuracy"]["rrpo"]["all"]
    assert f"{rrpo['mean']:.1f} ± {rrpo['sd']:.1f}%" in printed
    assert f"RRPO vs before: {statistics.fmean(gains):+.1f} ± {statistics.stdev(gains):.1f} points" in printed
    assert "over 2 seeds (0, 1)" in printed and (out / "demo.png").stat().st_size > 0


@pytest.mark.parametrize("value, message", [("0", "must be >= 1, got 0"), ("1001", "must be <= 1000, got 1001")])
def test_seeds_out_of_range_is_one_line(value, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--seeds", value, "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"savi demo: error: argument --seeds: {message}"
    assert not (tmp_path / "x").exists()


def test_seeds_refuse_a_folder_holding_the_users_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.json").write_text("the user's own results")
    assert main(["demo", "--seeds", "2", "--out", str(out), *SMALL]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not written by savi demo --seeds" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert (out / "results.json").read_text() == "the user's own results"


def test_seeds_refuse_a_generate_seed_override_each_run_would_replace(tmp_path, capsys):
    """Pass 17 A #24: ``--seeds 2 generate.seed=7`` ran seeds 0 and 1 for generation while the folder's record kept
    ``generate.seed: 7``."""
    assert main(["demo", "--seeds", "2", "--out", str(tmp_path / "ds"), *SMALL, "generate.seed=7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: generate.seed: override 'generate.seed=7': --seeds sets each run's generate.seed and "
                   "train.seed to its seed (train.seed .. +N-1); set train.seed to choose where they start"], err
    assert not (tmp_path / "ds").exists()
