"""Every command that reads pairs (or generation inputs) with the data folder behind a symlink (pass 25 R3 #50).

``data -> ../demo/data`` in the working folder, the records naming ``../videos/<clip>.mp4`` relative to their file:
``data/../videos`` is ``demo/videos`` on disk (a ``..`` after a symlinked folder climbs from where the link points),
never ``./videos`` as text would have it. Each command must find the videos, and a running job must not take the
path for a removed input (:mod:`savi_plugin.data.watched` keys files by :func:`savi_plugin.data.paths.absolute_path`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
import yaml

from savi_plugin.cli import main
from savi_plugin.data.paths import absolute_path
from tests.builders import read_jsonl, tiny_rrpo_files, write_jsonl

#: each command that reads the pairs (or generate's inputs) from data/, as the user types it, and the file it writes
COMMANDS = {
    "train": (["train", "r.yaml", "--data", "data/pairs.jsonl", "--output-dir", "t", "train.max_steps=1"],
              "t/adapter_model.safetensors"),
    "ablate": (["ablate", "r.yaml", "--pairs", "data/pairs.jsonl", "--losses", "dpo", "--no-benchmarks",
                "--out", "ab", "train.max_steps=1"], "ab/ablation.json"),
    "inspect": (["inspect", "data/pairs.jsonl", "--out", "site"], "site/index.html"),
    "data validate": (["data", "validate", "data/pairs.jsonl"], None),
    "data convert": (["data", "convert", "data/pairs.jsonl", "conv.jsonl", "--to", "savi"], "conv.jsonl"),
    "generate": (["generate", "--generator", "rrpo", "--model", "MODEL", "--input", "data/qa.jsonl", "--output",
                  "gen.jsonl", "--num-frames", "4", "-o", "answer_format=raw", "--no-progress"], "gen.jsonl"),
}


@pytest.fixture
def linked_data(tiny_llava_onevision, synthetic_samples, tmp_path, monkeypatch):
    """``tmp/demo/{data,videos}`` and a working folder ``tmp/work`` whose ``data`` links to ``../demo/data``."""
    demo, work = tmp_path / "demo", tmp_path / "work"
    (demo / "videos").mkdir(parents=True)
    work.mkdir()
    samples = []
    for sample in synthetic_samples[:2]:
        shutil.copy(sample.video, demo / "videos" / Path(sample.video).name)
        samples.append(dataclasses.replace(sample, video=f"../videos/{Path(sample.video).name}"))
    (demo / "data").mkdir()
    _, recipe = tiny_rrpo_files(demo / "data", tiny_llava_onevision, samples)
    write_jsonl(demo / "data" / "qa.jsonl", [dataclasses.asdict(s) for s in samples])
    (work / "r.yaml").write_text(yaml.safe_dump(recipe))
    os.symlink("../demo/data", work / "data")
    monkeypatch.chdir(work)
    assert not Path("videos").exists() and Path("data/../videos").is_dir()  # the trap: ./videos is not there
    return demo


def test_absolute_path_takes_dotdot_through_the_link(linked_data):
    assert absolute_path("data/../videos/x.mp4") == str(linked_data.resolve() / "videos" / "x.mp4")
    assert absolute_path("data/pairs.jsonl") == os.path.join(os.getcwd(), "data", "pairs.jsonl")  # link kept


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_reader_of_pairs_follows_a_symlinked_data_folder(command, linked_data, tiny_llava_onevision, capsys):
    argv, product = COMMANDS[command]
    argv = [str(tiny_llava_onevision) if a == "MODEL" else a for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "removed" not in err and "not found" not in err
    if product is not None:
        assert Path(product).is_file()
    if command == "data convert":  # the converted file names the same videos, wherever it is read from
        assert main(["data", "validate", "conv.jsonl"]) == 0
        assert all(Path(r["video"]).is_absolute() or (Path("data/..") / "videos").exists()
                   for r in read_jsonl(Path("conv.jsonl")))
