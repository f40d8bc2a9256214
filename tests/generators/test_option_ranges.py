"""Every number a generator option sets has a finite range, and the work those numbers describe is bounded before
the first item: draws per question, steps of a perturbation pipeline, questions per video, and the memory a batch
holds (``savi generate`` in-process through ``savi_plugin.cli.main``; nothing is loaded or written)."""

from __future__ import annotations

import dataclasses
import json
import os
import typing

import numpy as np
import pytest

from savi_plugin import registry
from savi_plugin.cli import main
from savi_plugin.config.values import MAX_NUMBER, Range, field_rules
from savi_plugin.generators.base import build_config

#: numeric options whose upper bound is not a declared Range, and what bounds them instead
BOUNDED_ELSEWHERE = {
    "max_new_tokens": "the model's context window: VideoLM.check_context refuses it at the first generate",
    "tag_max_new_tokens": "the tagger's context window (VideoLM.check_context)",
    "judge_max_new_tokens": "the judge's context window (VideoLM.check_context)",
    "temperature": "a sampling scale: no work grows with it (finite, <= MAX_NUMBER)",
    "long_answer_words": "a word-count threshold: no work grows with it",
    "short_answer_words": "a word-count threshold: no work grows with it",
    "min_question_words": "a word-count threshold: no work grows with it",
    "max_question_words": "a word-count threshold: no work grows with it",
    "scorer_margin": "a similarity threshold: no work grows with it",
    "scorer_temperature": "a weighting scale: no work grows with it",
}


def _numeric_options():
    for name in registry.available(registry.GENERATORS):
        cls = registry.load(registry.GENERATORS, name).config_class
        build_config(cls, {}, name)  # registers the shared decoding rules
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if {int, float} & set(typing.get_args(hints[field.name]) or (hints[field.name],)):
                yield name, cls, field


OPTIONS = list(_numeric_options())


@pytest.mark.parametrize("generator, cls, field", OPTIONS, ids=[f"{g}.{f.name}" for g, _, f in OPTIONS])
def test_every_numeric_option_has_a_stated_upper_bound(generator, cls, field):
    """A new count option cannot run unbounded: it declares a Range with an upper bound, or is listed above with
    what bounds it (and inf, nan and values above MAX_NUMBER are refused for every number whatever its rules)."""
    highs = [r.high for r in field_rules(cls, field) if isinstance(r, Range) and r.high is not None]
    assert highs or field.name in BOUNDED_ELSEWHERE, f"{generator}.{field.name}: no upper bound, no stated reason"
    if highs:
        assert max(highs) <= MAX_NUMBER


def test_the_walk_sees_the_count_options():
    names = {f.name for _, _, f in OPTIONS}
    assert {"num_perturbations", "pairs_per_question", "num_questions", "max_new_tokens", "top_p"} <= names


GENERATE = ["generate", "--generator", "rrpo", "--model", "m", "--input", "qa.jsonl", "--output", "pairs.jsonl",
            "--no-progress"]
CASES = [
    (["-o", "num_perturbations=4294967295"], "--option num_perturbations: must be >= 1 and <= 64, got 4294967295"),
    (["-o", "num_perturbations=65"], "--option num_perturbations: must be >= 1 and <= 64, got 65"),
    (["-o", "pairs_per_question=1000"], "--option pairs_per_question: must be >= 1 and <= 64"),
    (["--perturb", "shuffle," * 13], "--perturb: a pipeline of 13 steps; at most 12"),
    (["-o", "perturbations=[" + "reverse, " * 100 + "shuffle]"], "--option perturbations: a pipeline of 101 steps"),
    (["--perturb", "reverse", "-o", "num_perturbations=2"],
     "--option num_perturbations: num_perturbations=2 draws of a pipeline with no random step (reverse)"),
    (["--generator", "videosavi", "-o", "num_questions=4294967295"], "--option num_questions: must be >= 1 and <= 64"),
    (["--generator", "videosavi", "-o", "duplicate_threshold=2"], "--option duplicate_threshold: must be >= 0 and <= 1"),
    (["--generator", "videosavi", "-o", "min_question_words=9", "-o", "max_question_words=3"],
     "--option min_question_words: min_question_words (9) is above max_question_words"),
]


@pytest.mark.parametrize("extra, message", CASES, ids=[c[1].split(":")[0] + str(i) for i, c in enumerate(CASES)])
def test_an_unbounded_count_is_a_configuration_error_before_anything_runs(extra, message, tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(GENERATE + extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {message}"), err
    assert list(tmp_path.iterdir()) == []


def test_an_options_file_s_huge_pipeline_names_the_file(tmp_path, capsys, monkeypatch):
    """B54's options file, at a size a test parses quickly: the file and the key are named, nothing is written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "opts.yaml").write_text("perturbations:\n" + "  - shuffle\n" * 2000 + "num_perturbations: 2000\n")
    capsys.readouterr()
    assert main(GENERATE + ["--options", "opts.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: opts.yaml: perturbations: a pipeline of 2000 steps; at most 12 (each of the 6 " \
                  "perturbations twice): every step runs on every draw of every item", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opts.yaml"]


def test_a_batch_s_memory_counts_every_draw_s_clip(tmp_path, monkeypatch):
    """An RRPO batch holds the original and one perturbed copy per draw: the per-batch budget counts them all,
    before the batch is decoded, and names num_perturbations."""
    from savi_plugin.config.values import ConfigError
    from savi_plugin.generators.inputs import load_inputs
    from savi_plugin.generators.rrpo import RRPOGenerator
    from savi_plugin.generators.runner import _decode
    from savi_plugin.video.synthetic import render_sample, write_mp4

    video = tmp_path / "v.mp4"
    write_mp4(video, render_sample(np.random.default_rng(0), "moving_direction", size=32, num_frames=8)[0])
    (tmp_path / "qa.jsonl").write_text(json.dumps({"id": "q", "video": str(video), "question": "Which way?",
                                                   "options": ["left", "right"], "answer": "left"}) + "\n")
    items = load_inputs(tmp_path / "qa.jsonl")
    monkeypatch.setenv("SAVI_MAX_BATCH_DECODED_BYTES", str(2 * 8 * 32 * 32 * 3))  # two clips
    work, failed = _decode(items, 8, gen=RRPOGenerator({"num_perturbations": 1}))  # original + 1 draw: fits
    assert len(work) == 1 and failed == []
    with pytest.raises(ConfigError, match=r"batch_size: a batch of 1 videos .* \(8 frames each, held 3 times "
                                          r"\(num_perturbations\)\), above the per-batch budget .* lower the batch "
                                          r"size or num_perturbations"):
        _decode(items, 8, gen=RRPOGenerator({"num_perturbations": 2}))


def test_draws_beyond_the_distinct_ones_are_refused_only_when_they_cannot_differ():
    """More than one draw needs a random step or sampling: a fixed pipeline under greedy decoding would write the
    same pair again under another id."""
    from savi_plugin.generators.rrpo import RRPOConfig
    from savi_plugin.video.perturb import draws_vary

    assert not draws_vary("reverse") and not draws_vary("blur:4,occlude") and draws_vary(None)
    assert draws_vary("shuffle") and draws_vary("mask:0.5") and draws_vary("occlude:1;position=random")
    assert RRPOConfig(num_perturbations=2, perturbations="reverse", do_sample=True).num_perturbations == 2
    assert RRPOConfig(num_perturbations=64).num_perturbations == 64  # the default pipeline shuffles
    with pytest.raises(ValueError, match="no random step"):
        RRPOConfig(num_perturbations=2, perturbations="occlude")


#: every generator option that names a model folder, by generator
MODEL_FOLDER_OPTIONS = [("rrpo", "judge_model"), ("rrpo", "tagger_model"), ("videosavi", "scorer")]


@pytest.mark.parametrize("value", ["''", "' '"])
@pytest.mark.parametrize("generator, option", MODEL_FOLDER_OPTIONS)
def test_an_empty_model_folder_option_is_said_to_be_empty(generator, option, value, tmp_path, capsys, monkeypatch):
    """``-o judge_model=''`` was "``: is a folder without config.json``": the empty name read as the working folder
    (pass 23 D #8). ``data.files.folder_problem``, asked of every model and adapter folder, says it is empty."""
    monkeypatch.chdir(tmp_path)
    argv = [*GENERATE, "--generator", generator, "-o", f"{option}={value}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--option {option}: " in err[0], err
    assert "is an empty value (an unset variable in the shell?)" in err[0] and "is a folder" not in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("holds, what", [("config.json", "a model folder"),
                                         ("adapter_config.json", "an adapter folder")])
@pytest.mark.parametrize("name", ["", " ", "\t"])
def test_folder_problem_names_an_empty_name_as_empty(name, holds, what, tmp_path, monkeypatch):
    from savi_plugin.data.files import folder_problem

    monkeypatch.chdir(tmp_path)
    (tmp_path / "other").mkdir()  # the working folder is not empty: it would read "a folder without ..."
    assert folder_problem(name, holds, what) == f"is an empty value (an unset variable in the shell?), not {what}"


@pytest.mark.parametrize("run_from", ["the options file's folder", "its parent", "another folder"])
def test_a_path_in_an_options_file_is_relative_to_that_file(run_from, tmp_path, capsys, monkeypatch):
    """Pass 25 J #65: ``prompts: pr.yaml`` in ``opts/o.yaml`` was looked for in the working folder -- not found
    beside the options file, and a different ``pr.yaml`` there used silently. A path in an options file is relative
    to its folder (as a recipe's is), from wherever the command runs: here the file beside it is the one read (its
    unknown key is named in it), never the decoy in the working folder."""
    opts = tmp_path / "opts"
    opts.mkdir()
    (opts / "o.yaml").write_text("prompts: pr.yaml\n")
    (opts / "pr.yaml").write_text("not_a_prompt: x\n")
    here = {"the options file's folder": opts, "its parent": tmp_path, "another folder": tmp_path / "elsewhere"}[run_from]
    here.mkdir(exist_ok=True)
    (here / "pr.yaml").write_text("open_question: 'decoy {question}'\n") if here != opts else None
    monkeypatch.chdir(here)
    capsys.readouterr()
    assert main(GENERATE + ["--options", os.path.relpath(opts / "o.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown prompt key 'not_a_prompt'" in err and str(opts / "pr.yaml") in err, err
    assert len(err.splitlines()) == 1, err
