"""The paths rule (:mod:`savi_plugin.data.paths`) as every reader of a data file applies it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from savi_plugin.data.paths import path_from_file
from tests.builders import read_jsonl, write_jsonl


@pytest.fixture()
def linked(tmp_path, synthetic_samples):
    """``ds/`` holds a pair file and a manifest naming ``videos/a.mp4`` beside them; ``proj/`` holds symlinks to
    both files and a decoy ``videos/a.mp4`` of another clip (what a reader relative to the link would take)."""
    ds, proj = tmp_path / "ds", tmp_path / "proj"
    for folder, sample in ((ds, synthetic_samples[0]), (proj, synthetic_samples[1])):
        (folder / "videos").mkdir(parents=True)
        shutil.copyfile(sample.video, folder / "videos" / "a.mp4")
    s = synthetic_samples[0]
    write_jsonl(ds / "pairs.jsonl", [{"id": "p0", "video": "videos/a.mp4", "question": s.question,
                                      "chosen": f"The answer is {s.answer}.", "rejected": "It is none of them.",
                                      "chosen_tagged": f"The answer is <MASK>{s.answer}</MASK>.",
                                      "rejected_tagged": "It is <MASK>none</MASK> of them."}])
    write_jsonl(ds / "manifest.jsonl", [{"id": "v0", "video": "videos/a.mp4", "question": s.question,
                                         "options": list(s.options), "answer": s.answer}])
    for name in ("pairs.jsonl", "manifest.jsonl"):
        (proj / name).symlink_to(Path("..") / "ds" / name)
    return ds / "videos" / "a.mp4", proj


def _same(a, b) -> bool:
    return os.path.samefile(a, b)


def test_a_data_file_reached_through_a_symlink_names_the_videos_beside_the_file_itself(linked, tiny_llava_onevision,
                                                                                     tmp_path):
    """A pair file or manifest linked into another folder reads its relative video paths from the real file's
    folder, where its writer stored them -- in every reader (red team 8, B12: they were read beside the link)."""
    from savi_plugin.data.convert import convert_file
    from savi_plugin.generators.inputs import load_inputs
    from savi_plugin.models import load_backend
    from savi_plugin.training.dataset import PreferenceDataset

    real, proj = linked
    assert _same(path_from_file("videos/a.mp4", proj / "pairs.jsonl"), real)
    (item,) = load_inputs(proj / "manifest.jsonl")
    assert _same(item.video, real)
    backend = load_backend(tiny_llava_onevision, num_frames=4)
    (pair,) = PreferenceDataset(proj / "pairs.jsonl", backend.tokenizer, backend.end_of_turn).items
    assert _same(pair.video_path, real)
    out = tmp_path / "out" / "converted.jsonl"
    assert convert_file(proj / "pairs.jsonl", out, "savi", "savi") == 1
    assert _same(path_from_file(read_jsonl(out)[0]["video"], out), real)
    assert json.loads((proj / "pairs.jsonl").read_text())["video"] == "videos/a.mp4"  # the file itself unchanged
