"""Misuse, generated: every writer x every relation of its output to an input x every state of the target.

The cases are not listed one by one: :data:`WRITERS` says what each command reads and writes, :func:`spellings`
derives every way an output can name an input (the same path, ``./``-prefixed, a symlink, a hard link, a path
inside an input folder, a folder around an input file, another case where the file system folds case), and
:data:`STATES` every state the target can be in (absent, ours with the same configuration, ours with another,
a user's). Each case runs the real command in-process (``savi_plugin.cli.main``); refusals happen before any
model is loaded (the output layer, :mod:`savi_plugin.data.outputs`, is the first thing each writer calls), so the
whole matrix costs seconds.

What must hold: an output that is an input is refused with one ``error:`` line and every input is byte-for-byte
unchanged, with no lock or temporary file left behind; an existing target is written only when it carries our
mark for the same command and configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from misuse_kit import assert_one_line_error, clip, hold_lock, pair, qa_item, savi
from tests.builders import random_lora_adapter, read_jsonl, tiny_rrpo_run, write_jsonl

GEN = ["--generator", "rrpo", "--num-frames", "4", "--no-progress", "--option", "answer_format=raw",
       "--option", "max_new_tokens=6", "--option", "num_perturbations=1", "--batch-size", "2"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file (and link) under ``folder`` with the hash of its content."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def train_recipe(path: Path, model: Path, **train) -> Path:
    body = {"model": {"path": str(model), "num_frames": 4}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"loss_type": "rrpo", "learning_rate": 1.0e-4, "max_steps": 1, "per_device_train_batch_size": 2,
                      "save_strategy": "no", "use_cpu": True, "logging_steps": 1, "disable_tqdm": True, "seed": 0,
                      **train}}
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_llava_onevision) -> Path:
    """Inputs of every writer, in one folder: a model copy, videos, a QA manifest, pairs, a shard, recipes and a
    LLaVA-NeXT source checkpoint. Tests snapshot it to prove no writer touched an input."""
    root = tmp_path_factory.mktemp("world")
    shutil.copytree(tiny_llava_onevision, root / "model")
    data = root / "data"
    data.mkdir()
    (data / "videos").mkdir()  # a folder of videos alone: an output around it holds only what the pairs name
    videos = [clip(data / "videos" / f"v{i}.mp4", frames=8, seed=i) for i in range(2)]
    write_jsonl(data / "qa.jsonl", [qa_item(f"q{i}", v) for i, v in enumerate(videos)])
    write_jsonl(data / "pairs.jsonl", [pair("a", videos[0]), pair("b", videos[1], "green")])
    write_jsonl(data / "p.shard-00000-of-00001.jsonl", [pair("a", videos[0])])
    train_recipe(data / "train.yaml", root / "model")
    (root / "eval-data").mkdir()  # a data root (SAVI_DATA_ROOT) the eval commands read
    (data / "align.yaml").write_text(yaml.safe_dump({"extends": "tiny_demo", "model": {"path": str(root / "model")},
                                                     "data": {"qa": "qa.jsonl"},
                                                     "eval": {"data_root": str(root / "eval-data")}}))
    (data / "demo.yaml").write_text("extends: tiny_demo\n")
    random_lora_adapter(root / "model", root / "adapter", seed=1)
    (root / "eval-data" / "README.txt").write_text("the user's benchmark data\n")
    src = root / "llava-src"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"architectures": ["LlavaQwenForCausalLM"]}))
    (src / "model-00001-of-00001.safetensors").write_bytes(b"weights the user cannot download again")
    return root


@dataclass
class Writer:
    """One command that writes: how to call it, what it reads, and what its output is."""

    argv: Callable[[Path, Path], list]  #: (world, output) -> argv
    inputs: dict[str, str]  #: input name -> path inside the world (FOLDER_INPUTS: folders)
    folder: bool  #: the output is a folder
    command: str  #: the command stored in our mark
    replaces_own: bool = False  #: a mark of the same command with another configuration is replaced, not refused
    cheap: bool = False  #: a real run takes seconds: run the absent / same-configuration states for real
    extra: dict = field(default_factory=dict)


WRITERS: dict[str, Writer] = {
    "generate": Writer(lambda w, out: ["generate", "--model", w / "model", "--input", w / "data/qa.jsonl",
                                       "--output", out, *GEN],
                       {"model": "model", "manifest": "data/qa.jsonl", "video": "data/videos/v0.mp4"}, False,
                       "savi generate", cheap=True),
    "merge": Writer(lambda w, out: ["generate", "merge", out, w / "data/p.shard-00000-of-00001.jsonl"],
                    {"shard": "data/p.shard-00000-of-00001.jsonl"}, False, "savi generate merge",
                    replaces_own=True, cheap=True),
    "data-convert": Writer(lambda w, out: ["data", "convert", w / "data/pairs.jsonl", out, "--to", "trl"],
                           {"pairs": "data/pairs.jsonl"}, False, "savi data convert", replaces_own=True, cheap=True),
    "train": Writer(lambda w, out: ["train", w / "data/train.yaml", "--data", w / "data/pairs.jsonl",
                                    "--output-dir", out],
                    {"model": "model", "pairs": "data/pairs.jsonl", "recipe": "data/train.yaml",
                     "video": "data/videos/v0.mp4"}, True, "savi train"),
    "align": Writer(lambda w, out: ["align", w / "data/align.yaml", "--out", out],
                    {"model": "model", "recipe": "data/align.yaml", "video": "data/videos/v0.mp4",
                     "eval data root": "eval-data"}, True, "savi align"),  # pass 17 A #46
    "demo": Writer(lambda w, out: ["demo", "--recipe", w / "data/demo.yaml", "--out", out],
                   {"recipe": "data/demo.yaml"}, True, "savi demo"),
    "inspect": Writer(lambda w, out: ["inspect", w / "data/pairs.jsonl", "--out", out, "--no-progress"],
                      {"pairs": "data/pairs.jsonl", "video": "data/videos/v0.mp4"}, True, "savi inspect",
                      replaces_own=True),
    "convert": Writer(lambda w, out: ["convert", "llava-next", w / "llava-src", out, "--overwrite"],
                      {"source": "llava-src"}, True, "savi convert llava-next", replaces_own=True),
    "bench": Writer(lambda w, out: ["bench", "generation", "--json", out], {}, False, "savi bench",
                    replaces_own=True),
    "recipes-cp": Writer(lambda w, out: ["recipes", "cp", "tiny_demo", out], {}, False, "savi recipes cp",
                         cheap=True),
    "eval-suite": Writer(lambda w, out: ["eval", "suite", "savi_egoschema", "--model", w / "model", "--adapter",
                                         w / "adapter", "--data-root", w / "eval-data", "--out", out, "--limit", "1",
                                         "--num-frames", "4"],
                         {"model": "model", "adapter": "adapter", "data root": "eval-data"}, True,
                         "savi eval suite"),
}


def _case_folding(folder: Path) -> bool:
    probe = folder / "CaseProbe"
    probe.write_text("x")
    try:
        return (folder / "caseprobe").exists()
    finally:
        probe.unlink()


#: inputs that are folders (a model, a checkpoint); the others are files
FOLDER_INPUTS = {"model", "adapter", "eval-data", "llava-src"}  # paths inside the world
FILE_RELATIONS = ("equal", "dot", "symlink", "hardlink", "case")
FOLDER_RELATIONS = ("equal", "dot", "symlink", "inside", "inside-symlink")


def relations(input_rel: str, out_folder: bool) -> tuple[str, ...]:
    """The relations an output can have to the input ``input_rel`` (``around``: an output folder holding it;
    ``around-symlink``: a link to that folder)."""
    base = FOLDER_RELATIONS if input_rel in FOLDER_INPUTS else FILE_RELATIONS
    return base + (("around", "around-symlink") if out_folder else ())


def spelling(world: Path, tmp: Path, input_rel: str, relation: str, out_folder: bool) -> str:
    """The output path that has ``relation`` to the input ``world/input_rel`` (the ``./`` spelling is relative to
    the input's folder, the working folder of the test)."""
    target = world / input_rel
    link = tmp / f"link-{target.name}"
    inner = "sub" if out_folder else "out.jsonl"
    if relation == "equal":
        return str(target)
    if relation == "dot":
        return "./" + target.name
    if relation in ("symlink", "inside-symlink"):
        link.symlink_to(target)
        return str(link) if relation == "symlink" else f"{link}/{inner}"
    if relation == "hardlink":
        os.link(target, tmp / f"hard-{target.name}")
        return str(tmp / f"hard-{target.name}")
    if relation == "inside":
        return f"./{target.name}/{inner}"
    if relation == "around":
        return str(target.parent)
    if relation == "around-symlink":
        (tmp / "link-around").symlink_to(target.parent)
        return str(tmp / "link-around")
    if relation == "case":
        if not _case_folding(target.parent):
            pytest.skip("this file system tells cases apart: another case is another file")
        return str(target.with_name(target.name.swapcase()))
    raise ValueError(relation)


RELATION_CASES = [(w, name, rel) for w, spec in WRITERS.items() for name, where in spec.inputs.items()
                  for rel in relations(where, spec.folder)]


@pytest.mark.parametrize("writer,input_name,relation", RELATION_CASES)
def test_an_output_that_is_in_or_around_an_input_is_refused(writer, input_name, relation, world, tmp_path, capsys,
                                                           monkeypatch):
    spec = WRITERS[writer]
    target = world / spec.inputs[input_name]
    monkeypatch.chdir(target.parent)  # the ./ spelling is relative to the input's folder
    output = spelling(world, tmp_path, spec.inputs[input_name], relation, spec.folder)
    before = snapshot(world)
    code, _, err = savi(capsys, *spec.argv(world, output))
    assert code != 0, f"{writer} wrote to {output} ({relation} of {input_name})"
    assert_one_line_error(err)
    # refused as what it is -- a configuration error (exit 2) -- before any check of what the output holds (a
    # folder of videos is not "a user's files" to move away: it is what the job reads)
    assert code == 2, (writer, relation, err)
    assert snapshot(world) == before  # no input touched, no lock or temporary file left in an input's folder


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_llava_onevision, synthetic_samples) -> Path:
    """A real finished ``savi train`` run (one step, its one checkpoint kept: ``out/checkpoint-1``), in
    ``<folder>/out`` beside its recipe ``r.yaml`` and pairs."""
    return tiny_rrpo_run(tmp_path_factory.mktemp("finished"), tiny_llava_onevision, synthetic_samples[:1],
                         max_steps=1, save_strategy="steps", save_steps=1)


#: every writer, the output layer's (:data:`WRITERS`) and the two that read a run or keep their own record: ``savi
#: plot`` of the run itself (the checkpoint is its input) and ``savi eval fixture`` (its folder check)
CHECKPOINT_WRITERS = {**{name: (lambda w, run, out, s=spec: s.argv(w, out), spec.folder)
                         for name, spec in WRITERS.items()},
                      "plot": (lambda w, run, out: ["plot", run, "--out", out], False),
                      "eval-fixture": (lambda w, run, out: ["eval", "fixture", out, "-n", "1", "--benchmark",
                                                            "mvbench"], True),
                      # its --output_path carries no mark, but its place is checked (pass 15 C #20: lmms-eval wrote
                      # its results into checkpoint-60, and the run could no longer be continued)
                      "eval-run": (lambda w, run, out: ["eval", "run", "--data-root", w / "eval-data", "--", "--model",
                                                        "savi_video", "--model_args",
                                                        f"pretrained={w / 'model'},num_frames=4", "--tasks",
                                                        "savi_egoschema", "--limit", "1", "--output_path", out],
                                   True)}
#: how an output names a place in the checkpoint: by its path, through a link to the checkpoint, the checkpoint
CHECKPOINT_RELATIONS = ("inside", "inside-symlink", "equal")


@pytest.mark.parametrize("relation", CHECKPOINT_RELATIONS)
@pytest.mark.parametrize("writer", list(CHECKPOINT_WRITERS))
def test_an_output_inside_a_checkpoint_of_a_finished_run_is_refused(writer, relation, finished_run, world, tmp_path,
                                                                   capsys):
    """Pass 13 A39/A41: ``savi plot RUN --out RUN/checkpoint-40/curves.png`` and ``savi inspect --out
    RUN/checkpoint-40/site`` wrote into the checkpoint, and the run could no longer be extended (its resume checks
    every file a checkpoint holds). Every writer refuses it in one line, exit 2, naming the checkpoint."""
    argv, folder = CHECKPOINT_WRITERS[writer]
    run = finished_run / "out"
    checkpoint = run / "checkpoint-1"
    inner = "sub" if folder else "curves.png" if writer == "plot" else "out.jsonl"
    if relation == "inside-symlink":
        (tmp_path / "link").symlink_to(checkpoint)
        place = tmp_path / "link" / inner
    else:
        place = checkpoint / inner if relation == "inside" else checkpoint
    before, inputs = snapshot(finished_run), snapshot(world)
    code, _, err = savi(capsys, *argv(world, run, place))
    assert code == 2, (writer, relation, err)
    line = assert_one_line_error(err, "checkpoint-1")
    if writer != "plot":  # savi plot reads the run: refused as an output inside its input (the checkpoint)
        assert f"a checkpoint of the savi train run in {run}" in line, line
    assert snapshot(finished_run) == before and snapshot(world) == inputs


def test_a_run_plotted_where_savi_plot_writes_by_default_is_still_extended(finished_run, tmp_path, capsys):
    """``savi plot RUN`` writes ``RUN/training_curves.png`` (beside what it reads, not inside it): the run then
    continues (``max_steps`` 1 -> 2) from its checkpoint, which holds only what the run wrote."""
    run = tmp_path / "run"
    shutil.copytree(finished_run / "out", run, symlinks=True)
    code, _, err = savi(capsys, "plot", run)
    assert code == 0 and (run / "training_curves.png").stat().st_size > 0, err
    code, _, err = savi(capsys, "plot", run, "--out", run / "curves" / "c.png")  # a new folder of the run: not read
    assert code == 0, err
    code, _, err = savi(capsys, "train", finished_run / "r.yaml", "--data", finished_run / "pairs.jsonl",
                        "--output-dir", run, "train.max_steps=2")
    assert code == 0, err
    assert json.loads((run / "train_report.json").read_text())["global_step"] == 2


#: ``savi eval run``'s inputs: what ``--model_args`` and ``--data-root`` name (its ``--output_path`` carries no mark:
#: lmms-eval's own output folders are shared between runs; only its place relative to the inputs is checked)
EVAL_RUN_INPUTS = {"pretrained": "model", "adapter": "adapter", "data root": "eval-data"}
EVAL_RUN_CASES = [(name, rel) for name, where in EVAL_RUN_INPUTS.items() for rel in relations(where, True)]


@pytest.mark.parametrize("input_name,relation", EVAL_RUN_CASES)
def test_eval_run_refuses_an_output_path_in_or_around_what_it_evaluates(input_name, relation, world, tmp_path,
                                                                        capsys, monkeypatch):
    target = world / EVAL_RUN_INPUTS[input_name]
    monkeypatch.chdir(target.parent)
    output = spelling(world, tmp_path, EVAL_RUN_INPUTS[input_name], relation, True)
    before = snapshot(world)
    code, _, err = savi(capsys, "eval", "run", "--data-root", world / "eval-data", "--", "--model", "savi_video",
                        "--model_args", f"pretrained={world / 'model'},adapter={world / 'adapter'},num_frames=4",
                        "--tasks", "savi_egoschema", "--limit", "1", "--output_path", output)
    assert code == 2, f"eval run wrote to {output} ({relation} of {input_name})"
    assert_one_line_error(err, "--output_path")
    assert snapshot(world) == before


@pytest.mark.parametrize("owned", ["a savi train output folder", "the folder of a savi generate output",
                                   "a folder holding a savi train output", "a folder holding an eval fixture"])
def test_eval_run_refuses_an_output_path_that_is_or_holds_another_commands_marked_output(owned, finished_run,
                                                                                        world, tmp_path, capsys):
    """``savi eval run --output_path`` into a finished ``savi train`` folder, or the folder of a marked ``savi
    generate`` output, wrote lmms-eval's results among them (exit 0), where every other writer refuses another
    command's marked output: its place check (``check_place(claims_none=True)``) names the command, exit 1."""
    if owned.startswith("a savi train"):
        place, command, held = finished_run / "out", "savi train", "is savi train's output"
    elif owned == "a folder holding a savi train output":  # pass 25 R3 #54: lmms-eval wrote beside it
        place = tmp_path / "hold"
        shutil.copytree(finished_run / "out", place / "t", symlinks=True)
        command, held = "savi train", "holds t, savi train's output"
    elif owned == "a folder holding an eval fixture":
        place = tmp_path / "hold"
        code, _, err = savi(capsys, "eval", "fixture", place / "fx", "-n", "1", "--benchmark", "egoschema")
        assert code == 0, err
        command, held = "savi eval fixture", "holds fx, savi eval fixture's output"
    else:
        place = tmp_path / "gen"
        place.mkdir()
        code, _, err = savi(capsys, "generate", "--model", world / "model", "--input", world / "data/qa.jsonl",
                            "--output", place / "pairs.jsonl", *GEN)
        assert code == 0, err
        command, held = "savi generate", "holds pairs.jsonl, savi generate's output"
    before, inputs = snapshot(place), snapshot(world)
    code, _, err = savi(capsys, *CHECKPOINT_WRITERS["eval-run"][0](world, None, place))
    assert code == 1, err
    assert_one_line_error(err, f"{place}: --output_path {held} (marked ", "choose another --output_path")
    assert snapshot(place) == before and snapshot(world) == inputs and command in err


#: every command that marks a folder as its output: ``savi inspect`` and ``savi train`` make theirs for real; the
#: long-running ones mark theirs the way they do, through the output layer's claim (the mark is what is asked)
MARKED_FOLDER_COMMANDS = ("savi inspect", "savi train", "savi ablate", "savi align", "savi eval suite", "savi demo",
                          "savi bench")


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("command", MARKED_FOLDER_COMMANDS)
def test_eval_run_refuses_an_output_path_inside_another_commands_marked_folder(command, depth, finished_run, world,
                                                                              tmp_path, capsys):
    """``savi eval run --output_path site/sub`` inside a finished ``savi inspect`` site (or ``rrpo/evals`` inside the
    demo's train step) wrote lmms-eval's results there (exit 0), and the owner's own re-run was then refused as
    changed (R1 #18): a place inside another command's marked folder, at any depth, is refused naming the command
    and its folder (exit 1), and nothing is written."""
    from savi_plugin.data.outputs import claim

    if command == "savi train":
        owner = finished_run / "out"
    elif command == "savi inspect":
        owner = tmp_path / "site"
        _inspect_site(world, tmp_path, owner, 0, capsys)
    else:
        owner = tmp_path / "owned"
        with claim(owner, command=command, config={"k": 1}, folder=True) as held:
            held.write_mark()
    place = owner.joinpath(*["sub", "deeper"][:depth])
    before, inputs = snapshot(owner), snapshot(world)
    code, _, err = savi(capsys, *CHECKPOINT_WRITERS["eval-run"][0](world, None, place))
    assert code == 1, err
    assert_one_line_error(err, f"{place}: --output_path lies inside {owner}, {command}'s output (marked ",
                          "choose another --output_path outside it")
    assert snapshot(owner) == before and snapshot(world) == inputs


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("command", [*MARKED_FOLDER_COMMANDS, "savi eval fixture"])
@pytest.mark.parametrize("writer", list(CHECKPOINT_WRITERS))
def test_every_writer_refuses_an_output_inside_another_commands_marked_folder(writer, command, depth, finished_run,
                                                                             world, tmp_path, capsys):
    """``savi generate --output T/pairs.jsonl`` and ``savi eval fixture T/fx`` inside a finished ``savi train``
    output T were written there (exit 0), and so were a generation inside a ``savi inspect`` site and a plot inside
    the demo's train step (pass 24 G #76, R1 #31): every writer refuses a place inside another command's marked
    folder, at any depth, naming that folder and its command (exit 1), and writes nothing. ``savi plot`` of another
    run is refused inside a ``savi train`` output too (pass 25 R3 #14): only RUN_DIR's own curves lie in RUN_DIR
    (test_a_run_plotted_where_savi_plot_writes_by_default_is_still_extended)."""
    from savi_plugin.data.outputs import claim

    argv, folder = CHECKPOINT_WRITERS[writer]
    owner = tmp_path / "owned"
    if command == "savi eval fixture":  # its own marker, written by the command itself (pass 25 R3 #49)
        code, _, err = savi(capsys, "eval", "fixture", owner, "-n", "1", "--benchmark", "egoschema")
        assert code == 0, err
    else:
        with claim(owner, command=command, config={"k": 1}, folder=True) as held:
            held.write_mark()
    inner = "sub" if folder else "curves.png" if writer == "plot" else "out.jsonl"
    place = owner.joinpath(*["deeper"][:depth - 1], inner)
    before, inputs, run = snapshot(owner), snapshot(world), snapshot(finished_run)
    code, _, err = savi(capsys, *argv(world, finished_run / "out", place))
    assert code == 1, (writer, command, err)
    assert_one_line_error(err, f"lies inside {owner}, {command}'s output (marked ", "outside it")
    assert snapshot(owner) == before and snapshot(world) == inputs and snapshot(finished_run) == run


# ------------------------------------------------------------------------------------------------ target states
def _make_state(spec: Writer, out: Path, state: str) -> None:
    if state == "foreign":
        if spec.folder:
            out.mkdir()
            (out / "notes.txt").write_text("the user's own notes\n")
        else:
            out.write_text('{"id": "mine", "note": "a curated line"}\n')
    elif state == "ours-other-config":
        mark = out / ".savi-output.json" if spec.folder else out.with_name(out.name + ".savi-output.json")
        if spec.folder:
            out.mkdir()
            (out / "result.bin").write_bytes(b"an earlier result")
        else:
            out.write_text('{"id": "earlier"}\n')
        mark.write_text(json.dumps({"written_by": "savi", "command": spec.command,
                                    "config": {"something": "else"}}))
    elif state == "other-command":
        mark = out / ".savi-output.json" if spec.folder else out.with_name(out.name + ".savi-output.json")
        if spec.folder:
            out.mkdir()
        else:
            out.write_text('{"id": "earlier"}\n')
        mark.write_text(json.dumps({"written_by": "savi", "command": "savi something-else", "config": {}}))


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("state", ["foreign", "other-command", "ours-other-config"])
def test_an_existing_target_that_is_not_ours_for_this_run_is_refused(writer, state, world, tmp_path, capsys, caplog):
    spec = WRITERS[writer]
    out = tmp_path / ("out" if spec.folder else "out.jsonl")
    _make_state(spec, out, state)
    if state == "ours-other-config" and spec.replaces_own:
        pytest.skip(f"{writer} replaces its own earlier output whole (tested below)")
    before, inputs = snapshot(tmp_path), snapshot(world)
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code != 0
    line = assert_one_line_error(err, str(out))
    expected = {"foreign": "not written by", "other-command": "was written by savi something-else",
                "ours-other-config": "different configuration"}[state]
    assert expected in line
    # pass 23 C #7: a warning said what the refused output "holds" before the refusal; what a job will write is said
    # once its output is accepted
    said = err.splitlines() + [record.getMessage() for record in caplog.records]
    assert [ln for ln in said if str(out) in ln] == [line], said
    assert snapshot(tmp_path) == before and snapshot(world) == inputs


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("link", ["dangling", "to-an-empty-file"])
def test_a_target_that_is_a_symbolic_link_is_never_replaced_by_a_file(writer, link, world, tmp_path, capsys):
    """`recipes cp` onto a user's dangling link replaced the link with a regular file (red team 3)."""
    spec = WRITERS[writer]
    out = tmp_path / ("out" if spec.folder else "out.jsonl")
    target = tmp_path / "elsewhere"
    if link == "to-an-empty-file":
        target.write_text("")
    out.symlink_to(target)
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code != 0 and out.is_symlink() and os.readlink(out) == str(target)
    assert_one_line_error(err, str(out), "symbolic link")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["elsewhere"] * target.exists() + [out.name])


#: writers whose output has no mark of the claim's kind (a plot beside a run, a fixture folder's own record), with
#: the argv and the output kind of :class:`Writer`: the relation "below a file" holds for them too
BELOW_A_FILE_WRITERS = {**{name: (spec.argv, spec.folder) for name, spec in WRITERS.items()},
                        "plot": (lambda w, out: ["plot", w / "model", "--out", out], False),
                        "eval-fixture": (lambda w, out: ["eval", "fixture", out, "-n", "1", "--benchmark", "mvbench"],
                                         True)}


#: every writer (:data:`BELOW_A_FILE_WRITERS`), ``savi ablate`` and ``savi eval run``'s ``--output_path`` (no mark,
#: but a place like any other output's)
ENCLOSED_WRITERS = {**BELOW_A_FILE_WRITERS,
                    "ablate": (lambda w, out: ["ablate", w / "data/train.yaml", "--pairs", w / "data/pairs.jsonl",
                                               "--losses", "dpo", "--no-benchmarks", "--out", out], True),
                    "eval-run": (lambda w, out: CHECKPOINT_WRITERS["eval-run"][0](w, None, out), True)}


#: a ``savi eval fixture`` run holding its folder (:class:`~savi_plugin.eval.fixture_folder.FixtureFolder`)
HOLD_FIXTURE = """
import sys, time
from savi_plugin.eval.fixture_folder import FixtureFolder
with FixtureFolder(sys.argv[1]).claim():
    print("locked", flush=True)
    time.sleep(120)
"""


def _running_job(folder: Path, holder: str):
    """Another process holding ``folder`` as a running job does: by its lock inside it or beside it, or as a
    ``savi eval fixture`` run writing it."""
    if holder != "eval-fixture":
        return hold_lock(folder, folder=holder == "lock-inside")
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLD_FIXTURE, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("holder", ["lock-inside", "lock-beside", "eval-fixture"])
@pytest.mark.parametrize("writer", list(ENCLOSED_WRITERS))
def test_an_output_inside_a_folder_a_running_job_writes_is_refused_naming_it(writer, holder, world, tmp_path,
                                                                            capsys):
    """``savi eval fixture runs/ov/fx`` wrote into a running ``savi train``'s folder, and ``savi eval run
    --output_path runs/ov/ev`` too (red team 23, #29, #39): every writer asks the output layer's place check
    (:func:`~savi_plugin.data.outputs.check_place`), which refuses a place inside a folder another live job holds
    -- its lock inside it (train, align, demo, ablate, eval suite, eval fixture: #41 ran train and inspect inside
    a running fixture's folder) or beside it (a folder replaced whole: inspect, convert) -- in one line naming the
    folder and its holder, exit 1, nothing written."""
    argv, folder = ENCLOSED_WRITERS[writer]
    running = tmp_path / "running"
    running.mkdir()
    job = _running_job(running, holder)
    try:
        out = running / ("out" if folder else "out.png" if writer == "plot" else "out.jsonl")
        before, inputs = snapshot(tmp_path), snapshot(world)
        code, _, err = savi(capsys, *argv(world, out))
        assert code == 1, err
        assert_one_line_error(err, "/running/out", " lies inside ",  # a long path is shown cut in its middle
                              f"which another savi process is writing (pid {job.pid} ")
        assert snapshot(tmp_path) == before and snapshot(world) == inputs
    finally:
        job.kill()
        job.wait()


@pytest.mark.parametrize("writer", list(BELOW_A_FILE_WRITERS))
@pytest.mark.parametrize("depth", [1, 2])
def test_an_output_below_a_file_is_one_configuration_line_naming_the_file(writer, depth, world, tmp_path, capsys):
    """`--out qa.jsonl/site` with qa.jsonl a file: the system says only "Not a directory" of every name below it;
    the refusal names the file, exit 2 (a wrong flag value), not a mark that does not exist (red team 13, row 43)."""
    argv, folder = BELOW_A_FILE_WRITERS[writer]
    user = tmp_path / "qa.jsonl"
    user.write_text('{"id": "the user\'s"}\n')
    below = user.joinpath(*["sub"] * (depth - 1))
    out = below / ("out" if folder else ("out.png" if writer == "plot" else "out.jsonl"))
    inputs = snapshot(world)
    code, _, err = savi(capsys, *argv(world, out))
    assert code == 2, err
    assert_one_line_error(err, f"{out}: {user} is a file, not a folder: choose another")
    assert user.read_text() == '{"id": "the user\'s"}\n' and [p.name for p in tmp_path.iterdir()] == ["qa.jsonl"]
    assert snapshot(world) == inputs


#: where a loop of symbolic links stands on an output's path: (the output below tmp_path, the looping link)
LINK_LOOPS = {"the output itself": ("{out}", "{out}"), "the folder above": ("loop1/{out}", "loop1"),
              "two folders above": ("loop1/sub/{out}", "loop1")}


@pytest.mark.parametrize("where", LINK_LOOPS)
@pytest.mark.parametrize("writer", list(ENCLOSED_WRITERS))
def test_a_loop_of_symbolic_links_on_an_outputs_path_is_named_at_the_looping_link(writer, where, world, tmp_path,
                                                                                  capsys):
    """C #71: ``ln -s loop loop; savi generate --output loop/x.jsonl`` blamed ``loop/x.jsonl.savi-output.json`` (a
    mark that is not there: "exists and is unreadable ... move it away") while ``savi train --output-dir loop`` named
    the loop. The output layer's place check names the loop at the looping link, for every writer, exit 1, nothing
    written."""
    argv, folder = ENCLOSED_WRITERS[writer]
    name = "out" if folder else "out.png" if writer == "plot" else "out.jsonl"
    given, link = (text.format(out=name) for text in LINK_LOOPS[where])
    os.symlink(tmp_path / "loop2", tmp_path / link)
    os.symlink(tmp_path / link, tmp_path / "loop2")
    out = tmp_path / given
    inputs = snapshot(world)
    code, _, err = savi(capsys, *argv(world, out))
    assert code == 1, err
    named = f"{out}: " if out == tmp_path / link else f"{tmp_path / link}: "
    assert_one_line_error(err, named, f"is a loop of symbolic links (to {tmp_path / 'loop2'}, which leads back to it)",
                          "" if out == tmp_path / link else ", on the path of ")
    assert sorted(os.listdir(tmp_path)) == sorted([link, "loop2"]) and snapshot(world) == inputs


@pytest.mark.parametrize("writer", list(BELOW_A_FILE_WRITERS))
def test_an_output_named_dash_is_one_configuration_line_and_writes_nothing(writer, world, tmp_path, monkeypatch,
                                                                           capsys):
    """Pass 17 B #49: ``savi recipes cp tiny_demo -`` wrote a file named ``-`` (standard output to most tools)."""
    argv, _ = BELOW_A_FILE_WRITERS[writer]
    monkeypatch.chdir(tmp_path)
    inputs = snapshot(world)
    code, _, err = savi(capsys, *argv(world, "-"))
    assert code == 2, err
    assert_one_line_error(err, "-: ", "must be a .png file" if writer == "plot" else "names standard output")
    assert list(tmp_path.iterdir()) == [] and snapshot(world) == inputs


@pytest.mark.parametrize("tail", ["/", "/."])
@pytest.mark.parametrize("there", ["nothing", "a folder"])
@pytest.mark.parametrize("writer", [w for w, (_, folder) in BELOW_A_FILE_WRITERS.items() if not folder])
def test_a_file_output_given_as_a_folder_s_name_never_becomes_that_file(writer, there, tail, world, tmp_path,
                                                                         monkeypatch, capsys):
    """Pass 23 C #4: ``savi recipes cp tiny_demo newdir/`` (no newdir) wrote the FILE ``newdir``: ``pathlib`` drops
    the trailing ``/`` (and ``/.``) that names a folder, as ``cp`` reads it. Every writer of a file refuses such a
    name in one line, exit 2, writing nothing (the output layer's :func:`file_output`); ``savi recipes cp`` copies
    into the folder when it is one, as ``cp`` does."""
    argv, _ = BELOW_A_FILE_WRITERS[writer]
    monkeypatch.chdir(tmp_path)
    name = {"plot": "out.png", "bench": "out.json"}.get(writer, "out.jsonl")
    if there == "a folder":
        (tmp_path / name).mkdir()
    inputs = snapshot(world)
    code, _, err = savi(capsys, *argv(world, name + tail))
    if writer == "recipes-cp" and there == "a folder":
        assert code == 0 and sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "tiny_demo.yaml", "tiny_demo.yaml.savi-output.json"], err
        return
    assert code == 2, err
    assert_one_line_error(err, f"{name}{tail}: not a f")  # a file name / a folder (recipes cp, as cp says it)
    assert [p.name for p in tmp_path.iterdir()] == ([name] if there == "a folder" else [])
    assert there == "nothing" or list((tmp_path / name).iterdir()) == []
    assert snapshot(world) == inputs


@pytest.mark.parametrize("writer", [w for w, s in WRITERS.items() if s.cheap or w == "inspect"])
@pytest.mark.parametrize("what", ["a user's file", "a folder"])
def test_a_users_file_named_like_the_outputs_lock_is_never_emptied_or_removed(writer, what, world, tmp_path, capsys):
    """`e.jsonl.lock` holding a user's text was taken as the job's lock and deleted at its end (red team 4)."""
    spec = WRITERS[writer]
    out = tmp_path / ("out" if spec.folder else "out.jsonl")
    lock = out.with_name(out.name + ".lock")
    if spec.folder and writer != "inspect":
        pytest.skip("a folder output's lock lies inside it")
    if what == "a folder":
        lock.mkdir()
        (lock / "keep.txt").write_text("mine")
    else:
        lock.write_text("important\n")
    before = snapshot(tmp_path)
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code != 0 and snapshot(tmp_path) == before
    assert_one_line_error(err, str(out), "is not a savi lock file")


#: nodes that are neither a file nor a folder: the final rename would replace them (``/dev/null`` as root)
SPECIAL_NODES = ("fifo", "socket", "char-device", "symlink-to-fifo", "symlink-to-char-device")


def _make_special(out: Path, kind: str, tmp: Path) -> None:
    target = tmp / f"node-{kind.rsplit('-to-', 1)[-1]}" if kind.startswith("symlink") else out
    base = kind.rsplit("-to-", 1)[-1]
    if base == "fifo":
        os.mkfifo(target)
    elif base == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
        sock.close()
    elif base == "char-device":
        try:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
        except PermissionError:
            pytest.skip("creating a device node needs root")
    if kind.startswith("symlink"):
        out.symlink_to(target)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("kind", SPECIAL_NODES)
def test_an_existing_fifo_socket_or_device_target_is_refused_not_replaced(writer, kind, world, tmp_path, capsys):
    spec = WRITERS[writer]
    out = tmp_path / ("out" if spec.folder else "out.jsonl")
    _make_special(out, kind, tmp_path)
    before, inputs = os.lstat(out), snapshot(world)
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code != 0
    assert_one_line_error(err, str(out), "exists and is a")
    after = os.lstat(out)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)  # the node itself, not a new file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({out.name, *(p.name for p in tmp_path.glob("node-*"))})
    assert snapshot(world) == inputs


def test_the_atomic_writer_refuses_a_special_node_whoever_calls_it(tmp_path):
    """The backstop below :func:`claim`: a writer that did not claim its output still cannot replace a FIFO."""
    from savi_plugin.data.outputs import ForeignOutputError, write_text

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ForeignOutputError, match="FIFO"):
        write_text(tmp_path / "pipe", "x")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode) and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("writer", [w for w, s in WRITERS.items() if s.cheap])
def test_a_new_target_is_written_and_the_same_run_again_is_accepted(writer, world, tmp_path, capsys):
    spec = WRITERS[writer]
    out = tmp_path / "out.jsonl"
    inputs = snapshot(world)
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code == 0, err
    first = out.read_bytes()
    assert json.loads(out.with_name("out.jsonl.savi-output.json").read_text())["command"] == spec.command
    code, _, err = savi(capsys, *spec.argv(world, out))  # ours, same configuration: resumed / rewritten
    assert code == 0, err
    assert out.read_bytes() == first and snapshot(world) == inputs
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".lock")) or ".tmp" in p.name]
    assert not leftovers


#: where a stop lands before the first result: right after the output's mark (every writer), and each writer's
#: last step before its first result (generate: loading the model, after its progress file's configuration row;
#: train: the Trainer starting, after savi_train_config.json)
STOP_POINTS = {"generate": "savi_plugin.generators.runner._load_model",
               "train": "savi_plugin.training.trainer.PreferenceTrainer.train",
               "align": "savi_plugin.generators.runner._load_model"}
STOP_CASES = [(w, "mark", stop) for w in ("generate", "merge", "data-convert", "recipes-cp", "train")
              for stop in ("ctrl-c",)] + [(w, "last-step", stop) for w in STOP_POINTS for stop in ("ctrl-c", "SIGTERM")]


@pytest.mark.parametrize("writer,where,stop", STOP_CASES)
def test_a_stop_before_the_first_result_leaves_nothing_and_the_corrected_command_runs(writer, where, stop, world,
                                                                                      tmp_path, capsys, monkeypatch):
    """Ctrl-C (or SIGTERM, SIGHUP, SIGQUIT: the same ``KeyboardInterrupt``) before a writer's first result at a new
    output is undone like any other error there (``Output.undo``): the output, its mark and sidecars are gone, the
    line says nothing was written, and the corrected command (another configuration) is not refused as "another
    configuration" (red team 13, row 35)."""
    import importlib

    from savi_plugin.cli import Terminated
    from savi_plugin.data.outputs import Output

    spec = WRITERS[writer]
    out = tmp_path / ("out" if spec.folder else "out.jsonl")
    signal_exc, code, said = (KeyboardInterrupt, 130, "interrupted") if stop == "ctrl-c" else \
        (Terminated, 143, "terminated (SIGTERM)")

    def stopped(*args, **kwargs):
        raise signal_exc()

    if where == "mark":
        write_mark = Output.write_mark

        def mark_then_stop(self, *args, **kwargs):
            write_mark(self, *args, **kwargs)
            if Path(self.path) == out:
                raise signal_exc()

        monkeypatch.setattr(Output, "write_mark", mark_then_stop)
    else:
        owner, name = STOP_POINTS[writer].rsplit(".", 1)
        module, _, cls = owner.rpartition(".") if owner.endswith("Trainer") else (owner, "", "")
        target = getattr(importlib.import_module(module), cls) if cls else importlib.import_module(module)
        monkeypatch.setattr(target, name, stopped)
    before = sorted(p.name for p in tmp_path.iterdir())
    got, _, err = savi(capsys, *spec.argv(world, out))
    assert got == code and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (f"{said}: nothing was written (the new output {out} held no result yet "
                                            f"and was removed); re-run the command")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, mark, sidecar, lock or temporary
    monkeypatch.undo()
    if writer == "align":  # a whole iteration (generate, train, evaluate) is test_pipeline's: the folder is new again
        return
    corrected = {"generate": ["--num-frames", "6", "--limit", "1"], "train": ["train.learning_rate=1e-5"]}
    got, _, err = savi(capsys, *spec.argv(world, out), *corrected.get(writer, []))
    assert got == 0, err
    assert json.loads((out / ".savi-output.json" if spec.folder else out.with_name("out.jsonl.savi-output.json"))
                      .read_text())["command"] == spec.command


def _convert_fixture(world: Path, out: Path) -> list:
    """``savi convert llava-next`` of the LLaVA-NeXT fixture, which converts (the world's source refuses early)."""
    from tests.builders import LLAVA_NEXT_FIXTURE

    source = LLAVA_NEXT_FIXTURE / "source"
    return ["convert", "llava-next", source, out, "--vision-config", source / "siglip_vision_config.json"]


@pytest.mark.parametrize("a_existed", [False, True], ids=["a-new", "a-existed"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_configuration_error_after_the_claim_removes_the_folders_the_job_made_to_reach_its_output(
        writer, a_existed, world, tmp_path, capsys, monkeypatch):
    """An output two folders deep that do not exist yet (``a/b/out``), and a configuration error once the output is
    claimed and marked: the undo (``Output.undo``) leaves nothing of ``a/b/``, the folders the job created to reach
    it (pass 24 H #25: ``runs/`` of ``--output-dir runs/x`` was left empty); ``a/`` that existed before stays, with
    nothing in it."""
    from savi_plugin.data.outputs import Output
    from savi_plugin.errors import ConfigurationError

    spec = WRITERS[writer]
    if a_existed:
        (tmp_path / "a").mkdir()
    out = tmp_path / "a" / "b" / ("out" if spec.folder else "out.jsonl")
    write_mark = Output.write_mark

    def mark_then_refuse(self, *args, **kwargs):
        write_mark(self, *args, **kwargs)
        if Path(self.path) == out:
            raise ConfigurationError("a configuration error found after the claim")

    monkeypatch.setattr(Output, "write_mark", mark_then_refuse)
    code, _, err = savi(capsys, *(_convert_fixture if writer == "convert" else spec.argv)(world, out))
    assert code == 2, err
    assert_one_line_error(err, "a configuration error found after the claim")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == (["a"] if a_existed else [])


@pytest.mark.parametrize("writer", [w for w, s in WRITERS.items() if s.cheap and s.replaces_own])
def test_a_writer_that_replaces_its_own_output_leaves_nothing_of_the_earlier_one(writer, world, tmp_path, capsys):
    spec = WRITERS[writer]
    out = tmp_path / "out.jsonl"
    _make_state(spec, out, "ours-other-config")
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code == 0, err
    assert b"earlier" not in out.read_bytes()


def test_convert_overwrite_replaces_an_earlier_conversion_whole(world, tmp_path):
    """``convert --overwrite`` swaps in a new folder: no file of the earlier conversion stays beside the new one,
    and a conversion that fails leaves the earlier folder as it was."""
    from savi_plugin.data.outputs import claim, replace_folder

    dst = tmp_path / "converted"
    with claim(dst, command="savi convert llava-next", folder=True, replace_ours=True, lock_beside=True) as c:
        with replace_folder(dst) as tmp:
            (tmp / "model-00001-of-00002.safetensors").write_bytes(b"old shard 1")
            (tmp / "model-00002-of-00002.safetensors").write_bytes(b"old shard 2")
            c.write_mark(into=tmp)
    with claim(dst, command="savi convert llava-next", config={"other": 1}, folder=True, replace_ours=True,
               lock_beside=True) as c:
        with pytest.raises(RuntimeError), replace_folder(dst) as tmp:
            (tmp / "model.safetensors").write_bytes(b"half")
            raise RuntimeError("conversion failed")
        assert sorted(p.name for p in dst.iterdir()) == [".savi-output.json", "model-00001-of-00002.safetensors",
                                                         "model-00002-of-00002.safetensors"]
        with replace_folder(dst) as tmp:
            (tmp / "model.safetensors").write_bytes(b"new")
            c.write_mark(into=tmp)
    assert sorted(p.name for p in dst.iterdir()) == [".savi-output.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]  # no temporary or lock left beside it


def _inspect_site(world: Path, inputs: Path, out: Path, i: int, capsys) -> None:
    pairs = write_jsonl(inputs / f"pairs{i}.jsonl", read_jsonl(world / "data/pairs.jsonl")[:i + 1])
    code, _, err = savi(capsys, "inspect", pairs, "--out", out, "--no-progress")
    assert code == 0, err


def _llava_conversion(world: Path, inputs: Path, out: Path, i: int, capsys) -> None:
    from tests.builders import LLAVA_NEXT_FIXTURE

    source = LLAVA_NEXT_FIXTURE / "source"
    code, _, err = savi(capsys, "convert", "llava-next", source, out, "--overwrite", "--vision-config",
                        source / "siglip_vision_config.json")
    assert code == 0, err


def _demo_step(world: Path, inputs: Path, out: Path, i: int, capsys) -> None:
    from savi_plugin.data.outputs import step_product

    step_product(out, command="savi demo", config={"videos": 2}, what="the demo's videos",
                 make=lambda tmp: (tmp / "made.txt").write_text("the demo's videos"))


def _align_eval(world: Path, inputs: Path, out: Path, i: int, capsys) -> None:
    from savi_plugin.pipeline.evaluate import fresh_eval_folder

    with fresh_eval_folder(out, {"tasks": [f"task{i}"]}) as tmp:
        (tmp / "results.json").write_text(json.dumps({"run": i}))


def _align_merge(world: Path, inputs: Path, out: Path, i: int, capsys) -> None:
    from savi_plugin.pipeline.align import merge_adapter

    merge_adapter(world / "model", world / "adapter", out, None)


def _tiny_model(world: Path, inputs: Path, out: Path, i: int, capsys) -> None:
    from savi_plugin.models.tiny import build_tiny_model

    build_tiny_model(out, seed=i, hidden_size=16, num_layers=1)


#: every writer whose folder output is replaced whole (:func:`~savi_plugin.data.outputs.replace_folder`), by the
#: module that calls it: ``(make result i at out, a file the result holds, whether a re-run replaces the folder)``
REPLACE_WHOLE = {
    "cli/inspect.py": (_inspect_site, "index.html", True),
    "models/llava_next/convert.py": (_llava_conversion, "model.safetensors", True),
    "data/outputs/claim.py": (_demo_step, "made.txt", False),  # step_product: a demo step's product, made once and kept
    "pipeline/evaluate.py": (_align_eval, "results.json", True),
    "pipeline/align.py": (_align_merge, "config.json", True),
    "models/tiny.py": (_tiny_model, "config.json", True),
}
#: callers of replace_folder that no user names: a benchmark's cached inputs inside its claimed --work-dir
REPLACE_WHOLE_INTERNAL = {"bench/fixtures.py"}


def test_every_folder_replaced_whole_is_in_the_link_matrix():
    import savi_plugin

    package = Path(savi_plugin.__file__).parent
    callers = {str(p.relative_to(package)) for p in package.rglob("*.py")
               if re.search(r"(?<!def )\breplace_folder\(", p.read_text(encoding="utf-8"))}
    assert callers == set(REPLACE_WHOLE) | REPLACE_WHOLE_INTERNAL


@pytest.mark.parametrize("target", ["own-earlier-output", "empty-folder"])
@pytest.mark.parametrize("writer", list(REPLACE_WHOLE))
def test_a_folder_output_that_is_a_link_to_a_folder_is_written_through_the_link(writer, target, world, tmp_path,
                                                                              capsys):
    """``savi inspect --out linksite`` (a link to its own earlier site, or to an empty folder) replaced the link
    by a new folder, left the folder it named stale or empty and a ``.linksite.<pid>.<hex>.tmp`` link beside it
    (red team 23, #22, #45). README: a folder target may be a link to a folder. Every writer that replaces its
    folder whole writes into the folder the link leads to, keeps the link, and leaves no temporary or lock."""
    write, result, replaces = REPLACE_WHOLE[writer]
    inputs, links, targets = (tmp_path / name for name in ("inputs", "links", "targets"))
    for folder in (inputs, links, targets):
        folder.mkdir()
    real = targets / "site"
    if target == "own-earlier-output":
        write(world, inputs, real, 0, capsys)
    else:
        real.mkdir()
    before = os.stat(real).st_ino
    (links / "site").symlink_to(Path("..") / "targets" / "site", target_is_directory=True)
    write(world, inputs, links / "site", 1, capsys)
    assert [(p.name, os.readlink(p)) for p in links.iterdir()] == [("site", str(Path("..") / "targets" / "site"))]
    assert os.listdir(targets) == ["site"]  # no temporary, earlier folder or lock beside what the link names
    assert (real / result).is_file()
    if target == "own-earlier-output":
        assert (os.stat(real).st_ino != before) == replaces  # replaced whole, or (a step's product) kept


def test_output_dir_dot_in_a_users_project_is_refused(world, tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('mine')\n")
    monkeypatch.chdir(project)
    before = snapshot(project)
    code, _, err = savi(capsys, *WRITERS["train"].argv(world, Path(".")))
    assert code == 1 and snapshot(project) == before
    assert_one_line_error(err, "not written by savi train", "main.py")


@pytest.mark.parametrize("writer", [w for w, s in WRITERS.items() if not s.folder and w != "recipes-cp"])  # cp
@pytest.mark.parametrize("spelled", [".", "./", "..", "/"])  # into a folder writes the recipe's file in it, as cp
def test_a_file_output_spelled_as_a_folder_with_no_name_is_refused_naming_it(writer, spelled, world, tmp_path,
                                                                              capsys, monkeypatch):
    """``--output .`` or ``--output /`` (pass 15 A #8): Python's ``PosixPath('.') has an empty name`` (naming its
    sidecars), never the output's own refusal; now the line every existing folder gets."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('mine')\n")
    monkeypatch.chdir(project)
    before = snapshot(tmp_path)
    code, _, err = savi(capsys, *WRITERS[writer].argv(world, Path(spelled)))
    assert code == 1 and snapshot(tmp_path) == before, err
    assert_one_line_error(err, f"{Path(spelled)}: ", "exists and is a folder; a file is needed here")


# ------------------------------------------------------------------------------------------------ sidecars
def test_outputs_that_differ_only_in_suffix_share_no_sidecar(world, tmp_path, capsys):
    """``pairs.jsonl`` and ``pairs.json`` are two outputs: each has its own progress, report, mark and lock."""
    from savi_plugin.generators.runner import progress_path, report_path

    a, b = tmp_path / "pairs.jsonl", tmp_path / "pairs.json"
    for path in (a, b):
        code, _, err = savi(capsys, *WRITERS["generate"].argv(world, path))
        assert code == 0, err
    assert progress_path(a) != progress_path(b) and report_path(a) != report_path(b)
    for path in (a, b):
        report = json.loads(report_path(path).read_text())
        assert report["output"] == path.name and report["complete"]
    assert a.read_bytes() == b.read_bytes()  # the same run, twice: nothing of one leaked into the other


# ------------------------------------------------------------------------------------------------ run identity
@pytest.fixture()
def generated(world, tmp_path, capsys) -> tuple[Path, Path]:
    """A finished generation run in ``tmp_path`` from copies of the world's model and manifest."""
    model, manifest = tmp_path / "model", tmp_path / "qa.jsonl"
    shutil.copytree(world / "model", model)
    shutil.copyfile(world / "data/qa.jsonl", manifest)
    out = tmp_path / "pairs.jsonl"
    code, _, err = savi(capsys, "generate", "--model", model, "--input", manifest, "--output", out, *GEN)
    assert code == 0, err
    return out, model


def _regenerate(out: Path, capsys):
    return savi(capsys, "generate", "--model", out.parent / "model", "--input", out.parent / "qa.jsonl",
                "--output", out, *GEN)


def test_resume_after_the_manifest_was_edited_in_place_is_refused(generated, capsys):
    out, _ = generated
    manifest = out.parent / "qa.jsonl"
    manifest.write_text(manifest.read_text().replace("Which way", "In which direction"))
    before = out.read_bytes()
    code, _, err = _regenerate(out, capsys)
    assert code == 1 and out.read_bytes() == before
    assert_one_line_error(err, str(out), "identity.inputs changed content")


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # another checkpoint, same path, same size
    path.write_bytes(bytes(data))


#: a model folder changed between a run and its continuation: how, and what the refusal names (None: not a file a
#: loader reads, the run continues)
MODEL_CHANGES = {
    "weights replaced": (lambda m: _flip_last_byte(m / "model.safetensors"), "model.safetensors changed"),
    "processor file added": (lambda m: (m / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 16, "width": 16}})), "preprocessor_config.json added"),
    "generation config removed": (lambda m: (m / "generation_config.json").unlink(), "generation_config.json removed"),
    "notes added": (lambda m: (m / "NOTES.md").write_text("my notes\n"), None),
}


@pytest.mark.parametrize("change", list(MODEL_CHANGES))
def test_resume_after_the_model_folder_changed_names_each_file_or_continues(change, generated, capsys):
    """Pass 13 A3/A4: a file a loader reads added to (or changed in, or removed from) the model folder between a
    run and its continuation is refused naming the file (README: "a refusal names each file added, removed or
    changed"); a user's notes beside the model are not the model."""
    out, model = generated
    make, named = MODEL_CHANGES[change]
    make(model)
    before = out.read_bytes()
    code, _, err = _regenerate(out, capsys)
    if named is None:
        assert code == 0 and out.read_bytes() == before, err
        return
    assert code == 1 and out.read_bytes() == before
    assert_one_line_error(err, str(out), f"identity.model changed content (same path; {named})")


@pytest.mark.parametrize("damage", ["not JSON", "not a record", "torn last line"])
def test_resume_over_an_output_line_damaged_after_the_run_is_refused_naming_it(damage, generated, capsys):
    """The resume skipped a corrupted complete line and appended after it: the output then held a line that
    validate counts as a problem and training stops on (red team 3). A torn last line is a crash's: cut."""
    out, _ = generated
    mark = out.with_name(out.name + ".savi-output.json")
    stored = json.loads(mark.read_text())
    assert stored.pop("content")  # the finished run recorded its content; a later run that was killed has not:
    mark.write_text(json.dumps(stored))  # (every run drops it when it starts writing)
    lines = out.read_text().splitlines()
    assert len(lines) >= 1
    if damage == "not JSON":
        lines[0] = lines[0][:-3]
    elif damage == "not a record":
        lines[0] = json.dumps({**json.loads(lines[0]), "chosen": ""})
    text = "\n".join(lines) + "\n"
    out.write_text(text + ('{"id": "half' if damage == "torn last line" else ""))
    code, _, err = _regenerate(out, capsys)
    if damage == "torn last line":
        assert code == 0, err
        assert out.read_text() == text
        return
    assert code == 1 and out.read_text() == text
    assert_one_line_error(err, f"{out}:1:", "edited or damaged after savi wrote it")


@pytest.mark.parametrize("writer", [w for w, s in WRITERS.items() if s.cheap and not s.folder])
def test_a_finished_file_output_someone_changed_is_refused_by_the_next_run(writer, world, tmp_path, capsys):
    """`savi plot` and `savi data convert` re-runs replaced a file the user had edited since (red team 4); the mark
    records a finished file's content, and a run drops it when it starts writing (so a killed run resumes)."""
    spec = WRITERS[writer]
    out = tmp_path / "out.jsonl"
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code == 0, err
    st = out.stat()
    edited = out.read_bytes()[:-2] + b"X\n"  # the same size and time: cp -p, rsync -a
    out.write_bytes(edited)
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code != 0 and out.read_bytes() == edited
    assert_one_line_error(err, str(out), "was changed after", "wrote it")


def test_a_generation_output_hard_linked_to_a_users_file_is_never_appended_through(generated, capsys):
    """Pass 15 C #23: the output replaced by a hard link to the user's copy of it (``cp -p``; ``ln``) was extended,
    appending the new pairs to the user's file. savi appends to its output, so a second name is refused like a
    sidecar's, and nothing is written through it."""
    out, _ = generated
    user = out.parent / "userpairs.jsonl"
    shutil.copy2(out, user)
    out.unlink()
    os.link(user, out)
    before = user.read_bytes()
    code, _, err = savi(capsys, "generate", "--model", out.parent / "model", "--input", out.parent / "qa.jsonl",
                        "--output", out, *GEN)
    assert code == 1 and user.read_bytes() == before and os.stat(user).st_nlink == 2, err
    assert_one_line_error(err, f"{out}: is a hard link shared with another name (2 links): savi appends to this "
                               "file")


@pytest.mark.parametrize("writer", [w for w, (_, folder) in CHECKPOINT_WRITERS.items() if folder])
def test_a_folder_output_at_an_unfinished_generations_report_name_is_refused(writer, generated, world, capsys):
    """Pass 15 A #40: ``savi train --output-dir y.jsonl.report.json`` beside a running generation made a folder at
    its report's name, and the generation failed at its end naming a temporary file; its pairs then counted as an
    unfinished run. A folder output is asked the same sidecar question as a file output."""
    out, _ = generated
    report = out.with_name(out.name + ".report.json")
    report.unlink()  # the generation has not finished: no report yet
    argv, _ = CHECKPOINT_WRITERS[writer]
    code, _, err = savi(capsys, *argv(world, out.parent, report))
    assert code == 1 and not report.exists(), err
    assert_one_line_error(err, f"{report}: ", f"is the report.json of {out}, an output of savi generate")


@pytest.mark.parametrize("kind", ["report.json", "progress.jsonl"])
def test_a_file_output_whose_sidecar_name_another_commands_folder_holds_is_refused_naming_it(kind, world, tmp_path,
                                                                                            capsys):
    """Pass 16 A #8, the reverse of A #40: a site written at ``w.jsonl.report.json`` first, then ``savi generate
    --output w.jsonl`` said the folder was not savi's; it names the command that wrote it."""
    side = tmp_path / f"w.jsonl.{kind}"
    assert savi(capsys, *WRITERS["inspect"].argv(world, side))[0] == 0
    code, _, err = savi(capsys, *WRITERS["generate"].argv(world, tmp_path / "w.jsonl"))
    assert code == 1 and not (tmp_path / "w.jsonl").exists(), err
    assert_one_line_error(err, f"would use {side} as its {kind}, but that folder is an output of savi inspect")


@pytest.mark.parametrize("kind", ["report.json", "progress.jsonl", "savi-output.json"])
def test_an_output_at_an_inputs_own_sidecar_name_is_an_output_in_its_input(kind, generated, tmp_path, capsys):
    """Pass 17 A #1-#3: ``savi data convert pairs.jsonl pairs.jsonl.report.json`` was refused as another output's
    file (exit 1); the input's run report is read with it, so this is the output-in-input refusal, exit 2."""
    out, _ = generated
    target = out.with_name(f"{out.name}.{kind}")
    before = target.read_bytes() if target.exists() else None
    code, _, err = savi(capsys, "data", "convert", out, target, "--to", "trl")
    assert code == 2, err
    assert_one_line_error(err, f"OUT is the {kind} of IN ({out}), which this job reads with it")  # its usage's names
    assert (target.read_bytes() if target.exists() else None) == before


def test_a_finished_generation_re_run_with_a_smaller_limit_is_refused_and_a_larger_one_continues(generated,
                                                                                                  capsys):
    """Pass 18 A #24: a finished 6-item run re-run with ``--limit 3`` exited 0 and its mark and report said 3
    items while the file held 6. A limit may grow (extend the run), never shrink below what the output holds."""
    out, _ = generated
    files = sorted(out.parent.glob("pairs.jsonl*"))
    before = {p.name: p.read_bytes() for p in files}
    code, _, err = savi(capsys, "generate", "--model", out.parent / "model", "--input", out.parent / "qa.jsonl",
                        "--output", out, *GEN, "--limit", "1")
    assert code == 1, err
    assert_one_line_error(err, f"{out}: holds 1 item(s) beyond --limit 1 (it was made with no --limit): a run is "
                               f"extended, never shortened")
    assert {p.name: p.read_bytes() for p in files} == before
    code, _, err = savi(capsys, "generate", "--model", out.parent / "model", "--input", out.parent / "qa.jsonl",
                        "--output", out, *GEN, "--limit", "2")
    assert code == 0, err  # the whole input: nothing beyond it
    # pass 21 E #9: the earlier limit named is the mark's (the run's latest), not the first session's
    code, _, err = savi(capsys, "generate", "--model", out.parent / "model", "--input", out.parent / "qa.jsonl",
                        "--output", out, *GEN, "--limit", "1")
    assert code == 1, err
    assert_one_line_error(err, f"{out}: holds 1 item(s) beyond --limit 1 (it was made with --limit 2): a run is "
                               f"extended, never shortened")


def test_resume_after_the_stored_configuration_was_removed_is_refused(generated, capsys):
    out, _ = generated
    out.with_name(out.name + ".savi-output.json").unlink()
    code, _, err = _regenerate(out, capsys)
    assert code == 1
    assert_one_line_error(err, str(out), "not written by savi generate")


def test_training_on_an_unfinished_generation_run_is_refused_unless_allowed(generated, world, tmp_path, capsys):
    out, _ = generated
    report = json.loads(out.with_name(out.name + ".report.json").read_text())
    report["complete"] = False
    out.with_name(out.name + ".report.json").write_text(json.dumps(report))
    code, _, err = savi(capsys, "train", world / "data/train.yaml", "--data", out, "--output-dir", tmp_path / "t")
    assert code == 1 and not (tmp_path / "t").exists()
    assert_one_line_error(err, str(out), "incomplete", "--allow-incomplete-data")
    out.with_name(out.name + ".report.json").unlink()  # a run still under way: progress file, no report
    code, _, err = savi(capsys, "train", world / "data/train.yaml", "--data", out, "--output-dir", tmp_path / "t")
    assert code == 1
    assert_one_line_error(err, str(out), "has not finished")


@pytest.mark.parametrize("command", ["train", "ablate"])
def test_training_on_one_shard_of_a_sharded_run_is_refused_unless_allowed(command, world, tmp_path, capsys):
    """Pass 18 A #15: ``savi train --data pairs.shard-00000-of-00002.jsonl`` trained on half the pairs with no word
    (the shard's report is complete for its shard). A trainer consumes the whole run's pairs: one shard of several
    is refused like an unfinished run, naming the merge; ``--allow-incomplete-data`` trains on it, said."""
    shutil.copytree(world / "model", tmp_path / "model")
    code, _, err = savi(capsys, "generate", "--model", tmp_path / "model", "--input", world / "data/qa.jsonl",
                        "--output", tmp_path / "pairs.jsonl", "--shard", "0/2", *GEN)
    assert code == 0, err
    (shard,) = tmp_path.glob("pairs.shard-00000-of-00002.jsonl")
    argv = {"train": ["train", world / "data/train.yaml", "--data", shard, "--output-dir", tmp_path / "t"],
            "ablate": ["ablate", world / "data/train.yaml", "--pairs", shard, "--losses", "dpo", "--no-benchmarks",
                       "--out", tmp_path / "t"]}[command]
    code, _, err = savi(capsys, *argv)
    assert code == 1 and not (tmp_path / "t").exists(), err
    assert_one_line_error(err, f"{shard}: one shard (0/2) of a sharded savi generate run",
                          "merge every shard with savi generate merge")
    # pass 19 N15, N29: one conversion (to rrpo and back, or to trl) made a report saying complete, and the
    # shard trained with no word; the conversion carries that it is one shard
    once = tmp_path / "c.rrpo.jsonl"
    assert savi(capsys, "data", "convert", shard, once, "--to", "rrpo")[0] == 0
    twice = tmp_path / "c2.jsonl"
    assert savi(capsys, "data", "convert", once, twice, "--from", "rrpo", "--to", "savi")[0] == 0
    converted = [twice if a == shard else a for a in argv]
    code, _, err = savi(capsys, *converted)
    assert code == 1 and not (tmp_path / "t").exists(), err
    assert_one_line_error(err, f"{twice}: one shard (0/2) of a sharded savi generate run")
    if command == "train":  # the dry run refuses it too, and with the flag says what the run will do
        code, _, err = savi(capsys, *argv, "--dry-run")
        assert code == 1, err
        assert_one_line_error(err, f"{shard}: one shard (0/2) of a sharded savi generate run")
        code, out, err = savi(capsys, *argv, "--allow-incomplete-data", "--dry-run")
        assert code == 0 and f"note: {shard}: one shard (0/2)" in out, (out, err)


@pytest.mark.parametrize("state", ["report says incomplete", "still running"])
def test_converting_an_unfinished_generation_run_is_refused_unless_allowed(state, generated, tmp_path, capsys,
                                                                          caplog):
    """Converting laundered an unfinished run into a file with no report, which then trained as complete."""
    out, _ = generated
    report_file = out.with_name(out.name + ".report.json")
    if state == "still running":
        report_file.unlink()  # a run under way: a progress file, no report
    else:
        report_file.write_text(json.dumps({**json.loads(report_file.read_text()), "complete": False}))
    converted = tmp_path / "converted.jsonl"
    for to in ("savi", "trl"):
        code, _, err = savi(capsys, "data", "convert", out, converted, "--to", to)
        assert code == 1 and not converted.exists()
        assert_one_line_error(err, str(out), "--allow-incomplete")
    code, _, err = savi(capsys, "data", "convert", out, converted, "--allow-incomplete")
    assert code == 0 and converted.read_text() == out.read_text() and "converting what is there" in caplog.text
    from savi_plugin.data.provenance import unfinished_run

    assert unfinished_run(converted)  # carried forward: training on the copy is refused as on the source (red team 4)


@pytest.mark.parametrize("how", ["plain copy", "copy with its report", "converted", "converted to trl"])
def test_a_copy_of_a_generation_run_without_its_report_trains_with_one_warning(how, generated, tmp_path, capsys,
                                                                             caplog):
    """Completeness lives in the run report beside the output; a plain `cp` of the pairs leaves it behind, so the
    copy's records get one warning that the run's end cannot be checked (red team 5), and one that the model
    their records name (relative to the folder they were written in) is not the model being trained; a copy or
    conversion that carries the report forward gets none (``savi data convert`` rewrites paths for the new
    place)."""
    from savi_plugin.training.run import check_pairs_source

    out, model = generated
    copy = tmp_path / "elsewhere" / "pairs.jsonl"
    copy.parent.mkdir()
    if how.startswith("converted"):
        code, _, err = savi(capsys, "data", "convert", out, copy, "--to", "trl" if how.endswith("trl") else "savi")
        assert code == 0, err
    else:
        shutil.copyfile(out, copy)
    if how == "copy with its report":
        shutil.copyfile(out.with_name(out.name + ".report.json"), copy.with_name(copy.name + ".report.json"))
    caplog.clear()
    check_pairs_source(copy, model)
    warnings = [r.getMessage() for r in caplog.records]
    if how == "plain copy":
        # its records store their model (and videos) relative to the folder they were written in, as every path
        # under a file's own folder is stored: in another folder they name nothing, which the copy is told
        assert len(warnings) == 2 and all(str(copy) in w for w in warnings), warnings
        assert "no run report is beside it" in warnings[0] and "not by the model being trained" in warnings[1]
    else:
        assert warnings == []


def test_a_conversion_that_would_write_no_record_is_refused(tmp_path, capsys):
    src = tmp_path / "cr.jsonl"  # old-Mac line ends: one unparseable line
    src.write_bytes(b'{"id": "a"}\r{"id": "b"}\r')
    code, _, err = savi(capsys, "data", "convert", src, tmp_path / "out.jsonl", "--bad-records", "skip")
    assert code == 1 and not (tmp_path / "out.jsonl").exists()
    assert_one_line_error(err, str(src), "no valid record to convert")


def test_pairs_of_another_model_train_with_one_warning(generated, world, caplog):
    from savi_plugin.training.run import check_pairs_source

    out, model = generated
    check_pairs_source(out, model)
    assert not caplog.records
    check_pairs_source(out, world / "model")  # the same files: the same model, wherever it lies
    assert not caplog.records
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes()[:-1] + b"\0")
    check_pairs_source(out, model)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "generated by" in warnings[0] and str(out) in warnings[0]
    assert "its files have changed since" in warnings[0]  # the same folder, other weights: said as such


def test_an_adapter_refuses_a_base_it_was_not_trained_on(world, tiny_qwen2_vl, tmp_path, capsys):
    from savi_plugin.data.identity import IdentityMismatchError, check_adapter_base, write_adapter_identity
    from savi_plugin.models import load_backend

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')  # what makes a folder an adapter
    write_adapter_identity(adapter, world / "model", "llava_onevision")
    check_adapter_base(adapter, world / "model")  # its own base: accepted
    other = tmp_path / "other"
    shutil.copytree(world / "model", other)
    (other / "config.json").write_text((other / "config.json").read_text().replace("}", ', "note": 1}', 1))
    with pytest.raises(IdentityMismatchError, match="another base model"):
        load_backend(other, adapter=adapter)
    code, _, err = savi(capsys, "generate", "--model", tiny_qwen2_vl, "--adapter", adapter, "--input",
                        world / "data/qa.jsonl", "--output", tmp_path / "p.jsonl", *GEN)
    assert code == 2  # a configuration error: nothing marked, the corrected command runs
    assert_one_line_error(err, str(adapter), "another model family (llava_onevision -> qwen2_vl)")
    assert list(tmp_path.glob("p.jsonl*")) == []


@pytest.mark.parametrize("writer", [w for w, s in WRITERS.items() if not s.folder])
@pytest.mark.parametrize("kind", ["progress.jsonl", "report.json"])
def test_a_users_file_named_like_a_new_outputs_sidecar_is_never_replaced(writer, kind, world, tmp_path, capsys):
    """A run report has one place, beside its output, where every reader looks (data/provenance.py); a file already
    there without our mark on the output is someone's, and a new run refuses it instead of replacing it (a custom
    `--report` path once overwrote another run's report, or became the output or its progress file: red team 5)."""
    spec = WRITERS[writer]
    out = tmp_path / "out.jsonl"
    side = out.with_name(f"{out.name}.{kind}")
    side.write_text('{"my": "notes"}\n')
    before, inputs = snapshot(tmp_path), snapshot(world)
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code != 0 and snapshot(tmp_path) == before and snapshot(world) == inputs
    assert_one_line_error(err, str(side), "holds no mark")


def test_generate_has_no_report_path_option(world, tmp_path, capsys):
    """The run report is always the output's sidecar: no option can put it where readers do not look."""
    code, _, err = savi(capsys, *WRITERS["generate"].argv(world, tmp_path / "p.jsonl"), "--report",
                        tmp_path / "r.json")
    assert code == 2 and list(tmp_path.iterdir()) == []
    assert_one_line_error(err, "--report", "p.jsonl.report.json")


def test_train_into_a_finished_folder_with_another_configuration_is_refused_without_resume(world, tmp_path, capsys):
    out = tmp_path / "out"
    argv = WRITERS["train"].argv(world, out)
    code, _, err = savi(capsys, *argv)
    assert code == 0, err
    finished = snapshot(out)
    assert (out / "savi_adapter.json").is_file()  # the adapter records its base model
    code, _, err = savi(capsys, *argv, "train.beta=0.5")  # no --resume
    assert code == 1 and snapshot(out) == finished
    assert_one_line_error(err, str(out), "different configuration", "training.beta")
    code, _, err = savi(capsys, *argv)  # the same configuration again: accepted (it trains the same run anew)
    assert code == 0, err


#: what an adapter folder records about its base: ours (savi_adapter.json) or only what peft writes
ADAPTER_RECORDS = ("savi", "peft-only")


def _adapter_of(base: Path, folder: Path, record: str) -> Path:
    """An adapter folder trained on ``base`` as far as its records say (the check reads records before weights)."""
    from savi_plugin.data.identity import write_adapter_identity

    folder.mkdir()
    architecture = json.loads((base / "config.json").read_text())["architectures"][0]
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "base_model_name_or_path": str(base),
        "auto_mapping": {"base_model_class": architecture, "parent_library": "transformers"}}))
    if record == "savi":
        write_adapter_identity(folder, base, None)
    return folder


@pytest.mark.parametrize("record", ADAPTER_RECORDS)
def test_an_adapter_of_another_family_is_refused_whatever_it_records(record, world, tiny_qwen2_vl, tmp_path, capsys):
    from savi_plugin.data.identity import check_adapter_base

    adapter = _adapter_of(world / "model", tmp_path / "adapter", record)
    check_adapter_base(adapter, world / "model")  # its own base: accepted
    code, _, err = savi(capsys, "generate", "--model", tiny_qwen2_vl, "--adapter", adapter, "--input",
                        world / "data/qa.jsonl", "--output", tmp_path / "p.jsonl", *GEN)
    assert code == 2 and list(tmp_path.glob("p.jsonl*")) == []  # refused before the first item, nothing marked
    line = assert_one_line_error(err, str(adapter), "trained on")
    assert "qwen2_vl" in line.lower() or "Qwen2VL" in line


def test_an_adapter_naming_a_local_base_of_another_family_is_refused_without_any_class_record(world, tiny_qwen2_vl,
                                                                                              tmp_path):
    """Another tool's adapter (no savi_adapter.json, no peft auto_mapping) whose base_model_name_or_path is a local
    LLaVA folder ran on a Qwen2-VL base with only a warning (red team 3)."""
    from savi_plugin.data.identity import IdentityMismatchError, check_adapter_base

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA",
                                                             "base_model_name_or_path": str(world / "model")}))
    check_adapter_base(adapter, world / "model")  # its own base: accepted
    with pytest.raises(IdentityMismatchError, match="a llava_onevision model, and would be applied to .*a qwen2_vl"):
        check_adapter_base(adapter, tiny_qwen2_vl)


def test_an_adapter_with_no_record_of_its_base_is_applied_with_one_warning(world, tmp_path, caplog):
    from savi_plugin.data.identity import check_adapter_base

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with caplog.at_level("WARNING"):
        check_adapter_base(adapter, world / "model")
    assert "cannot be compared" in caplog.text


@pytest.mark.parametrize("rank", ["widest+1", 2**24, 2**32 - 1])
def test_a_lora_rank_above_every_layer_is_refused_before_allocation_and_marks_nothing(rank, world, tmp_path, capsys):
    """``lora.r`` has a per-model maximum (min(d_in, d_out) of the widest targeted layer): above it peft would ask
    for up to terabytes. The refusal is a configuration error found after the claim: the folder is left as it was."""
    config = json.loads((world / "model/config.json").read_text())
    hidden = config["text_config"]["hidden_size"]
    value = hidden + 1 if rank == "widest+1" else rank
    out = tmp_path / "run"
    argv = [*WRITERS["train"].argv(world, out), f"lora.r={value}"]
    code, _, err = savi(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, "lora.r", f"must be <= {hidden}", str(value))
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("targets, fragment", [
    ("[]", "lora.target_modules: must not be empty"),
    ("''", "lora.target_modules: must not be empty"),
    ("[nosuch]", "names no module of the model (LlavaOnevisionForConditionalGeneration): 'nosuch'; its linear "
                 "layers include: "),
    ("[q_proj, nosuch]", "names no module of the model (LlavaOnevisionForConditionalGeneration): 'nosuch';"),
    ("nosuch.*", "names no module of the model (LlavaOnevisionForConditionalGeneration): 'nosuch.*';"),
])
def test_lora_target_modules_naming_nothing_is_a_configuration_error_that_marks_nothing(targets, fragment, world,
                                                                                       tmp_path, capsys):
    """An empty ``lora.target_modules`` is refused by the value rules (the dry run too); names that match no
    module of the loaded model are refused after it loads, before peft and training, naming the key and listing
    modules that exist -- never peft's own sentence, never exit 1."""
    out = tmp_path / "run"
    argv = [*WRITERS["train"].argv(world, out), f"lora.target_modules={targets}"]
    code, _, err = savi(capsys, *argv)
    assert code == 2, err
    line = assert_one_line_error(err, fragment)
    assert "k_proj, " in line or "empty" in line, line
    assert not out.exists() and list(tmp_path.iterdir()) == []
    if "empty" in fragment:
        code, _, err = savi(capsys, *argv, "--dry-run")
        assert code == 2 and fragment in assert_one_line_error(err), err


#: how a video a manifest names can change while the manifest stays byte-identical
VIDEO_CHANGES = ("copied-over", "symlink-retargeted", "one-byte-appended")


@pytest.mark.parametrize("change", VIDEO_CHANGES)
def test_resume_after_a_named_video_changed_at_the_same_path_is_refused(change, world, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("v0.mp4", "v1.mp4"):
        shutil.copyfile(world / "data" / "videos" / name, videos / f"real-{name}")
        (videos / name).symlink_to(videos / f"real-{name}")
    manifest = tmp_path / "qa.jsonl"
    write_jsonl(manifest, [qa_item(f"q{i}", videos / f"v{i}.mp4") for i in range(2)])
    out = tmp_path / "pairs.jsonl"
    argv = ["generate", "--model", world / "model", "--input", manifest, "--output", out, *GEN]
    code, _, err = savi(capsys, *argv, "--limit", "1")
    assert code == 0, err
    if change == "copied-over":
        shutil.copyfile(videos / "real-v1.mp4", videos / "real-v0.mp4")
    elif change == "symlink-retargeted":
        (videos / "v0.mp4").unlink()
        (videos / "v0.mp4").symlink_to(videos / "real-v1.mp4")
    else:
        with open(videos / "real-v0.mp4", "ab") as fh:
            fh.write(b"\0")
    before = out.read_bytes()
    code, _, err = savi(capsys, *argv)  # the resume that would add q1 beside a q0 made from the old video
    assert code == 1 and out.read_bytes() == before
    assert_one_line_error(err, str(out), "identity.videos changed content")


def test_training_resume_after_the_pairs_were_reordered_names_the_data_not_the_videos(world, tmp_path, capsys):
    """Pass 25 J #48: the same pairs in another order (so the videos first named in another order) were refused as
    ``identity.videos changed content``, though no video changed: the videos' identity is in path order now, and
    the refusal names the data file's digest alone."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("v0.mp4", "v1.mp4"):
        shutil.copyfile(world / "data" / "videos" / name, data / name)
    rows = [pair("a", "v0.mp4"), pair("b", "v1.mp4", "green")]
    write_jsonl(data / "pairs.jsonl", rows)
    out = tmp_path / "out"
    argv = ["train", world / "data/train.yaml", "--data", data / "pairs.jsonl", "--output-dir", out]
    code, _, err = savi(capsys, *argv)
    assert code == 0, err
    write_jsonl(data / "pairs.jsonl", rows[::-1])
    code, _, err = savi(capsys, *argv, "--resume")
    line = assert_one_line_error(err, str(out), "data_sha256: ")
    assert code == 1 and "identity.videos" not in line, line


def test_training_resume_after_a_video_the_pairs_name_changed_at_the_same_path_is_refused(world, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("v0.mp4", "v1.mp4"):
        shutil.copyfile(world / "data" / "videos" / name, data / name)
    write_jsonl(data / "pairs.jsonl", [pair("a", "v0.mp4"), pair("b", "v1.mp4", "green")])  # relative to the file
    out = tmp_path / "out"
    argv = ["train", world / "data/train.yaml", "--data", data / "pairs.jsonl", "--output-dir", out]
    code, _, err = savi(capsys, *argv)
    assert code == 0, err
    finished = snapshot(out)
    shutil.copyfile(data / "v1.mp4", data / "v0.mp4")  # the pair file unchanged, one of its videos not
    code, _, err = savi(capsys, *argv, "--resume")
    assert code == 1 and snapshot(out) == finished
    assert_one_line_error(err, str(out), "identity.videos changed content")


@pytest.fixture(scope="module")
def two_shards(world, tmp_path_factory) -> Path:
    """A finished 2-shard generation run (``m.shard-*-of-00002.jsonl``, their progress files and reports)."""
    from savi_plugin.cli import main

    folder = tmp_path_factory.mktemp("shards")
    for shard in ("0/2", "1/2"):
        assert main([str(a) for a in ("generate", "--model", world / "model", "--input", world / "data/qa.jsonl",
                                      "--output", folder / "m.jsonl", "--shard", shard, *GEN[:-2],
                                      "--batch-size", "1")]) == 0
    return folder


@pytest.mark.parametrize("damage", ["field edited", "line corrupted", "id given other content"])
def test_a_merge_over_a_damaged_shard_is_incomplete_and_not_trained_on(damage, two_shards, world, tmp_path, capsys):
    """A shard edited after its run lost records in the merged file, which then said complete: true."""
    for file in two_shards.iterdir():
        shutil.copy2(file, tmp_path / file.name)
    out = tmp_path / "m.jsonl"
    shards = sorted(tmp_path.glob("m.shard-*-of-00002.jsonl"))
    lines = [s.read_text().splitlines() for s in shards]
    assert all(lines), "each shard holds a pair"
    first = json.loads(lines[0][0])
    if damage == "field edited":
        lines[0][0] = json.dumps({**first, "chosen": first["chosen"] + " (edited)"})  # chosen_tagged disagrees now
    elif damage == "line corrupted":
        lines[0][0] = lines[0][0][:-5]
    else:
        lines[1].append(json.dumps({**first, "question": "another question"}))
    for shard, text in zip(shards, lines):
        shard.write_text("\n".join(text) + "\n")
    code, _, err = savi(capsys, "generate", "merge", out)
    assert code != 0 and not out.exists()
    assert_one_line_error(err, str(out), "incomplete shard set")
    code, _, err = savi(capsys, "generate", "merge", "--allow-incomplete", out)
    assert json.loads(out.with_name("m.jsonl.report.json").read_text())["complete"] is False
    code, _, err = savi(capsys, "train", world / "data/train.yaml", "--data", out, "--output-dir", tmp_path / "t")
    assert code == 1 and not (tmp_path / "t").exists()
    assert_one_line_error(err, str(out), "incomplete")


def test_resume_that_extends_the_limit_over_unchanged_videos_is_accepted(world, tmp_path, capsys):
    manifest = tmp_path / "qa.jsonl"
    write_jsonl(manifest, [qa_item(f"q{i}", world / "data" / "videos" / f"v{i}.mp4") for i in range(2)])
    out = tmp_path / "pairs.jsonl"
    argv = ["generate", "--model", world / "model", "--input", manifest, "--output", out, *GEN]
    assert savi(capsys, *argv, "--limit", "1")[0] == 0
    code, _, err = savi(capsys, *argv)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 2


# ------------------------------------------------------------------------------------------------ marker names
#: what a user can leave at a name savi keeps its own record under (our mark, a fixture's marker): none is ours
FOREIGN_AT_MARK = {
    "user text": lambda p: p.write_text("my notes\n"),
    "JSON without written_by": lambda p: p.write_text('{"mine": 1}\n'),
    "JSON of another writer": lambda p: p.write_text('{"written_by": "someone"}\n'),
    "a folder with a file": lambda p: (p.mkdir(), (p / "keep.txt").write_text("mine")),
    "a FIFO": lambda p: os.mkfifo(p),
}


def tree(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (files, folders, links, FIFOs) with its kind and, for a file, its content."""
    out = {}
    for p in sorted(folder.rglob("*")):
        mode = os.lstat(p).st_mode
        if stat.S_ISREG(mode):
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p.relative_to(folder))] = f"mode {stat.S_IFMT(mode):o}" + (f" -> {os.readlink(p)}"
                                                                             if stat.S_ISLNK(mode) else "")
    return out


def _refused_untouched(argv: list, named: Path, tmp_path: Path, world: Path, capsys) -> str:
    before, inputs = tree(tmp_path), snapshot(world)
    code, _, err = savi(capsys, *argv)
    assert code != 0
    line = assert_one_line_error(err, str(named))
    assert ".tmp" not in line  # the real path, never a temporary's
    assert tree(tmp_path) == before and snapshot(world) == inputs
    return line


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("state", list(FOREIGN_AT_MARK))
def test_whatever_a_user_left_at_the_marks_name_is_refused_never_replaced(writer, state, world, tmp_path, capsys):
    """A mark is ours only when it is a regular file holding a JSON object with ``"written_by": "savi"``: a user's
    file at ``<out>.savi-output.json`` was replaced by the mark, one in a folder output's ``.savi-output.json`` too,
    and a folder there gave an error naming a temporary file (red team 6)."""
    from savi_plugin.data.outputs import mark_path

    spec = WRITERS[writer]
    out = tmp_path / ("out" if spec.folder else "out.jsonl")
    if spec.folder:
        out.mkdir()
    mark = mark_path(out, spec.folder)
    FOREIGN_AT_MARK[state](mark)
    line = _refused_untouched(spec.argv(world, out), mark, tmp_path, world, capsys)
    assert "exists and is" in line


@pytest.mark.parametrize("writer", [w for w, s in WRITERS.items() if s.folder])
@pytest.mark.parametrize("what", ["a user's file", "a folder"])
def test_a_users_file_named_like_the_lock_inside_a_folder_output_is_kept(writer, what, world, tmp_path, capsys):
    """``<out>/.savi.lock`` holding a user's text, or a folder there, was deleted by the writers that replace their
    folder whole (``savi inspect``, ``convert --overwrite``) and lock beside it (red team 6)."""
    spec = WRITERS[writer]
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".savi.lock"
    if what == "a folder":
        lock.mkdir()
        (lock / "keep.txt").write_text("mine")
    else:
        lock.write_text("important\n")
    line = _refused_untouched(spec.argv(world, out), lock, tmp_path, world, capsys)
    assert "not a savi lock file" in line


@pytest.mark.parametrize("state", [*FOREIGN_AT_MARK, "another command's marker"])
def test_whatever_a_user_left_at_the_fixture_markers_name_is_refused(state, world, tmp_path, capsys):
    """``savi eval fixture`` overwrote a user's ``.savi-eval-fixture`` (red team 6): only what it writes is ours."""
    root = tmp_path / "ff"
    root.mkdir()
    marker = root / ".savi-eval-fixture"
    if state == "another command's marker":
        marker.write_text(json.dumps({"written_by": "savi", "written": {}}))
    else:
        FOREIGN_AT_MARK[state](marker)
    _refused_untouched(["eval", "fixture", root, "-n", "1", "--benchmark", "mvbench"], marker, tmp_path, world,
                       capsys)


def test_the_fixture_accepts_its_own_marker_and_its_first_versions_plain_text(tmp_path, capsys):
    root = tmp_path / "ff"
    argv = ["eval", "fixture", root, "-n", "1", "--benchmark", "mvbench"]
    assert savi(capsys, *argv)[0] == 0
    assert savi(capsys, *argv)[0] == 0  # its own JSON marker
    (root / ".savi-eval-fixture").write_text("written by savi eval fixture: synthetic data, safe to overwrite\n")
    code, _, err = savi(capsys, *argv)
    assert code == 0, err


# ------------------------------------------------------------------------ provenance, generated over routes
# A pair file reaches a consumer by a route: a plain copy, a conversion to another format and back, a merge, a cat
# of two files. Whatever the route, every consumer (train, convert, merge) gives the answer the one rule gives
# (savi_plugin.data.provenance): a file that is not what its report vouches for is refused, a file whose run's end
# cannot be checked is warned about once, and pairs of another model (or of several) are said to be.
@pytest.fixture(scope="module")
def finished(world, tmp_path_factory) -> Path:
    """One finished generation run (``pairs.jsonl``, its progress file and report) of the world's model."""
    from savi_plugin.cli import main

    folder = tmp_path_factory.mktemp("finished")
    out = folder / "pairs.jsonl"
    assert main([str(a) for a in ("generate", "--model", world / "model", "--input", world / "data/qa.jsonl",
                                  "--output", out, *GEN)]) == 0
    assert len(out.read_text().splitlines()) >= 2, "the run wrote two pairs"
    return out


def _run_copy(finished: Path, folder: Path, name: str = "pairs.jsonl") -> Path:
    """The finished run's pairs with their report and progress file, copied into ``folder``."""
    folder.mkdir(exist_ok=True)
    for suffix in ("", ".report.json", ".progress.jsonl"):
        shutil.copyfile(finished.with_name(finished.name + suffix), folder / (name + suffix))
    return folder / name


def _convert(capsys, src: Path, dst: Path, to: str, frm: str = "savi", *flags) -> Path:
    code, _, err = savi(capsys, "data", "convert", src, dst, "--from", frm, "--to", to, *flags)
    assert code == 0, err
    return dst


#: each route: what it does to a file -> the file a consumer then reads
ROUTES: dict[str, Callable] = {
    "as is": lambda capsys, src, tmp: src,
    "plain copy": lambda capsys, src, tmp: Path(shutil.copyfile(src, tmp / "cp.jsonl")),
    "convert": lambda capsys, src, tmp: _convert(capsys, src, tmp / "cv.jsonl", "savi"),
    "convert twice": lambda capsys, src, tmp: _convert(capsys, _convert(capsys, src, tmp / "cv1.jsonl", "trl"),
                                                       tmp / "cv2.jsonl", "trl", "trl"),
    "trl and back": lambda capsys, src, tmp: _convert(capsys, _convert(capsys, src, tmp / "t.jsonl", "trl"),
                                                      tmp / "back.jsonl", "savi", "trl"),
    "rrpo and back": lambda capsys, src, tmp: _convert(capsys, _convert(capsys, src, tmp / "r.json", "rrpo"),
                                                       tmp / "back.jsonl", "savi", "rrpo"),
    "merge": lambda capsys, src, tmp: (savi(capsys, "generate", "merge", tmp / "mg.jsonl", src), tmp / "mg.jsonl")[1],
    "merge then trl": lambda capsys, src, tmp: _convert(capsys, ROUTES["merge"](capsys, src, tmp), tmp / "mt.jsonl",
                                                        "trl"),
}


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("start", ["with its report", "plain copy"])
def test_a_files_state_survives_every_route_to_training(start, route, finished, world, tmp_path, capsys, caplog):
    """A finished run's pairs stay vouched for along every route; a copy that left its report behind stays
    "cannot be checked" along every route (a conversion or merge carried it away silently: red team 6), and the
    pairs' model is known along every route (a trl or rrpo round trip drops the records' meta)."""
    from savi_plugin.training.run import check_pairs_source

    src = _run_copy(finished, tmp_path / "run")
    if start == "plain copy":
        src = Path(shutil.copyfile(src, tmp_path / "copied.jsonl"))
    data = ROUTES[route](capsys, src, tmp_path)
    assert data.is_file()
    caplog.clear()
    check_pairs_source(data, world / "model")
    warnings = _warnings(caplog)
    if start == "plain copy" or route == "plain copy":
        assert len(warnings) == 1 and str(data) in warnings[0] and "cannot be checked" in warnings[0], warnings
    else:
        assert warnings == []
        report = json.loads(data.with_name(data.name + ".report.json").read_text())
        assert report["complete"] is True and report["content"]["size"] == data.stat().st_size
    caplog.clear()
    check_pairs_source(data, world / "llava-src")  # another model: said once, whatever the route
    other = [w for w in _warnings(caplog) if "generated by" in w]
    assert len(other) == 1 and str(world / "model") in other[0] and "llava-src" in other[0], _warnings(caplog)


DAMAGE = {
    "truncated in place": lambda pairs: pairs.write_text(pairs.read_text().splitlines()[0] + "\n"),
    "edited in place": lambda pairs: pairs.write_text(pairs.read_text().replace('"question": "', '"question": "Ed: ',
                                                                                1)),
    "another file's report beside it": lambda pairs: (
        shutil.copyfile(pairs, pairs.with_name("big.jsonl")),
        pairs.write_text(pairs.read_text().splitlines()[1] + "\n"),
        pairs.with_name(pairs.name + ".progress.jsonl").unlink()),
    # red team 9, row 58: convert and train said "no run report is beside it" and went on
    "its report torn by a kill": lambda pairs: (report := pairs.with_name(pairs.name + ".report.json")).write_text(
        report.read_text()[:200]),
}


@pytest.mark.parametrize("consumer", ["train", "convert", "merge"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_file_that_is_not_what_its_report_vouches_for_is_refused_by_every_consumer(damage, consumer, finished,
                                                                                    world, tmp_path, capsys):
    """A finished run truncated in place, or a file beside another run's complete report, trained as complete and
    was converted and merged into files that said complete: true (red team 6)."""
    pairs = _run_copy(finished, tmp_path / "run")
    DAMAGE[damage](pairs)
    argv = {"train": ["train", world / "data/train.yaml", "--data", pairs, "--output-dir", tmp_path / "t"],
            "convert": ["data", "convert", pairs, tmp_path / "cv.jsonl"],
            "merge": ["generate", "merge", tmp_path / "mg.jsonl", pairs]}[consumer]
    code, _, err = savi(capsys, *argv)
    assert code != 0 and not any((tmp_path / n).exists() for n in ("t", "cv.jsonl", "mg.jsonl"))
    assert_one_line_error(err, str(pairs), "is there but unreadable" if "torn" in damage else
                          "not what its run report vouches for")
    flag = {"train": "--allow-incomplete-data", "convert": "--allow-incomplete", "merge": "--allow-incomplete"}
    if consumer != "train":  # allowed: the product says it is not complete, and training on it is refused in turn
        assert flag[consumer] in err
        code, _, err = savi(capsys, *argv, flag[consumer])
        assert code == 0, err
        out = argv[-2] if consumer == "merge" else argv[-1]
        assert json.loads(out.with_name(out.name + ".report.json").read_text())["complete"] is False
        code, _, err = savi(capsys, "train", world / "data/train.yaml", "--data", out, "--output-dir", tmp_path / "t")
        assert code == 1 and not (tmp_path / "t").exists()
        assert_one_line_error(err, str(out), "--allow-incomplete-data")


def test_a_report_without_a_content_identity_is_not_compared(finished, world, tmp_path):
    """Reports written by an older savi store no content identity: they vouch as they did."""
    from savi_plugin.data.provenance import unfinished_run

    pairs = _run_copy(finished, tmp_path / "run")
    report = pairs.with_name(pairs.name + ".report.json")
    report.write_text(json.dumps({k: v for k, v in json.loads(report.read_text()).items() if k != "content"}))
    DAMAGE["truncated in place"](pairs)
    assert unfinished_run(pairs) is None


def test_merging_a_converted_file_names_its_report_as_not_a_generation_runs(two_shards, tmp_path, capsys):
    """A converted shard's report (convert's: no counts) crashed merge with KeyError: 'counts' (red team 6)."""
    for file in two_shards.iterdir():
        shutil.copy2(file, tmp_path / file.name)
    shards = sorted(tmp_path.glob("m.shard-*-of-00002.jsonl"))
    converted = _convert(capsys, shards[0], tmp_path / "c0.jsonl", "savi")
    code, _, err = savi(capsys, "generate", "merge", tmp_path / "out.jsonl", converted, shards[1])
    assert code == 1 and not (tmp_path / "out.jsonl").exists()
    assert_one_line_error(err, str(converted), "savi data convert's, not a generation run's")


def test_pairs_of_two_models_concatenated_train_with_a_warning_naming_each(finished, world, tmp_path, caplog):
    """`cat a.jsonl b.jsonl` of two models' pairs has no report: the records' meta.model say who made them."""
    from savi_plugin.training.run import check_pairs_source

    lines = finished.read_text().splitlines()
    other = [json.dumps({**(r := json.loads(line)), "id": r["id"] + "-o",
                         "meta": {**r["meta"], "model": str(world / "llava-src")}}) for line in lines]
    cat = tmp_path / "cat.jsonl"
    cat.write_text("\n".join(lines + other[:1]) + "\n")
    caplog.clear()
    check_pairs_source(cat, world / "model")
    warnings = _warnings(caplog)
    assert any("cannot be checked" in w for w in warnings)
    assert [w for w in warnings if "generated by" in w] == [
        f"{cat}: 1 of these pairs were generated by {world / 'llava-src'}, not by the model being trained "
        f"({world / 'model'}); a preference method trains on its own model's answers"]
    mixed = [w for w in warnings if "mix" in w]
    assert len(mixed) == 1 and f"{len(lines)} by {os.path.realpath(world / 'model')}" in mixed[0]
    assert len(warnings) == 3


def test_a_training_stopped_before_its_first_step_leaves_nothing_that_refuses_the_corrected_command(world, tmp_path,
                                                                                                     capsys):
    """A run that stopped on a missing video left its mark and savi_train_config.json, so the corrected command
    (train.bad_records=skip) was refused as "a different configuration" (red team 6): a new folder holding only the
    job's record of its configuration holds no result and is removed like one."""
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [pair("a", world / "data/videos/v0.mp4"), pair("b", tmp_path / "missing.mp4", "green"),
                        pair("c", world / "data/videos/v1.mp4", "yellow")])
    out = tmp_path / "t"
    argv = ["train", world / "data/train.yaml", "--data", pairs, "--output-dir", out]
    code, _, err = savi(capsys, *argv)
    assert code != 0 and "missing.mp4" in err
    assert not out.exists()
    code, _, err = savi(capsys, *argv, "train.bad_records=skip")
    assert code == 0, err
    assert (out / "train_report.json").is_file()


@pytest.mark.parametrize("writer", list(WRITERS))
def test_an_output_whose_sidecar_names_exceed_name_max_is_refused_naming_the_length(writer, world, tmp_path,
                                                                                  capsys):
    """A name the file system takes for the output itself but not for a file beside it (``NAME.savi-output.json``,
    a temporary): one line saying the name is too long and by how much, the reason kept whole however long the
    path; nothing written."""
    spec = WRITERS[writer]
    out = tmp_path / ("a" * (240 if spec.folder else 245) + ("" if spec.folder else ".jsonl"))
    code, _, err = savi(capsys, *spec.argv(world, out))
    assert code == 2, (writer, err)
    line = assert_one_line_error(err)
    assert "name is too long" in line and "bytes over this file system's" in line and "NAME_MAX" in line, line
    assert line.endswith("bytes"), line  # the reason, last, is never what a cut removes
    assert list(tmp_path.iterdir()) == []


def test_pairs_whose_relative_model_names_nothing_from_their_folder_say_so(generated, tmp_path, caplog):
    """Pairs written inside a run folder store their model relative (``../models/warm``); copied elsewhere, that
    names nothing from the copy's folder, and the warning says so instead of naming another model (red team pass
    10, B19)."""
    from savi_plugin.training.run import check_pairs_source

    out, model = generated
    copy = tmp_path / "elsewhere" / "pairs.jsonl"
    copy.parent.mkdir()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    copy.write_text("".join(json.dumps({**r, "meta": {**r["meta"], "model": "../models/warm"}}) + "\n"
                            for r in lines))
    caplog.clear()
    check_pairs_source(copy, model)
    warned = [r.getMessage() for r in caplog.records if "not by the model being trained" in r.getMessage()]
    assert len(warned) == 1 and "../models/warm: stored relative to the folder the pairs were written in" in warned[0]


#: every command that claims a run folder and writes its steps inside it: its argv, the function that runs the
#: steps once the folder is claimed (replaced here: the claim alone is under test), and two of its steps: a
#: folder the run makes itself (``plain``), and a product inside the run another command it runs marks
#: (``product``, with that command), or a kept product (``kept``) the run seals
RUN_FOLDERS = {
    "ablate": (lambda w, out: ["ablate", w / "data/train.yaml", "--pairs", w / "data/pairs.jsonl", "--losses",
                               "dpo,rrpo", "--no-benchmarks", "--out", out],
               "savi_plugin.pipeline.ablate._run", {"plain": "rrpo", "product": ("rrpo/train", "savi train"),
                                                    "kept": "dpo/summary.json"}),
    "align": (WRITERS["align"].argv, "savi_plugin.pipeline.align._run_locked",
              {"plain": "iter_0", "product": ("iter_1/model", "savi align merge")}),
    "demo": (WRITERS["demo"].argv, "savi_plugin.demo.run._run",
             {"plain": "data", "product": ("rrpo", "savi train")}),
    "demo-seeds": (lambda w, out: [*WRITERS["demo"].argv(w, out), "--seeds", "2"],
                   "savi_plugin.demo.run.run_demo", {"plain": None, "product": ("seed-1", "savi demo")}),
    "eval-suite": (WRITERS["eval-suite"].argv, "savi_plugin.eval.suite._run_claimed",
                   {"plain": "runs/base", "kept": "runs/adapter/done.json"}),
}
#: the command each run folder's mark names
RUN_COMMAND = {"ablate": "savi ablate", "align": "savi align", "demo": "savi demo", "demo-seeds": "savi demo --seeds",
               "eval-suite": "savi eval suite"}


def _claimed_run(command: str, world: Path, out: Path, monkeypatch, capsys) -> Callable[[], tuple[int, str, bool]]:
    """Claim ``out`` for ``command`` (its steps replaced by one that leaves a result beside them, so the folder
    stays claimed), and return a call of the same command that says whether any step ran."""
    from savi_plugin.errors import RunError

    argv, steps_at, _ = RUN_FOLDERS[command]
    ran: list[bool] = []

    def steps(*args, **kwargs):
        ran.append(True)
        (out / "steps-began.log").write_text("a step ran\n")
        raise RunError("the steps are not under test")

    monkeypatch.setattr(steps_at, steps)
    code, _, err = savi(capsys, *argv(world, out))
    assert code == 1 and ran and (out / ".savi-output.json").is_file(), err
    ran.clear()

    def again() -> tuple[int, str, bool]:
        code, _, err = savi(capsys, *argv(world, out))
        return code, err, bool(ran)
    return again


def _intrude(out: Path, rel: str, intruder: str) -> Path:
    """Put ``intruder`` at ``out/rel``; returns the path the refusal must name."""
    place = out / rel
    place.parent.mkdir(parents=True, exist_ok=True)
    if intruder == "a user's folder with a file":
        place.mkdir()
        (place / "notes.txt").write_text("the user's own notes\n")
        return place / "notes.txt"
    if intruder == "another command's output":
        place.mkdir()
        (place / "index.html").write_text("<html>a site</html>\n")
        (place / ".savi-output.json").write_text(json.dumps({"written_by": "savi", "command": "savi inspect",
                                                             "config": {}}))
        return place
    place.write_text('{"mine": 1}\n')  # a user's file at a kept product's name
    return place


STEP_CASES = [(command, where, intruder) for command, (_, _, places) in RUN_FOLDERS.items()
              for where in ("plain", "product", "kept") if places.get(where)
              for intruder in (["a user's file"] if where == "kept" else
                               ["a user's folder with a file", "another command's output"])]


@pytest.mark.parametrize("command,where,intruder", STEP_CASES)
def test_a_step_of_a_run_folder_that_is_not_the_runs_own_is_refused_before_any_step(command, where, intruder,
                                                                                    world, tmp_path, monkeypatch,
                                                                                    capsys):
    """Pass 23 C #14-#19: ``savi ablate`` and ``savi align`` wrote a loss run or an iteration into a ``savi inspect``
    site, or into a user's folder beside its notes, with exit 0; a user's file in ``iter_3/model`` was found only
    after that iteration had generated and trained, with "choose a new --out" as the remedy; a user's
    ``summary.json`` was called "a None run's result". Every run folder command refuses, before its first step, a
    step that is not its own, in one line naming what to move, and leaves it as it was."""
    out = tmp_path / "run"
    again = _claimed_run(command, world, out, monkeypatch, capsys)
    place = RUN_FOLDERS[command][2][where]
    rel, product_of = place if isinstance(place, tuple) else (place, None)
    named = _intrude(out, rel, intruder)
    before, inputs = snapshot(tmp_path), snapshot(world)
    code, err, ran = again()
    assert code == 1 and not ran, err
    line = assert_one_line_error(err, f"error: {named}: ", f"at a step of the {RUN_COMMAND[command]} run in {out}",
                                 "move it away")
    expected = {"a user's folder with a file": f"not written by {product_of or RUN_COMMAND[command]}",
                "another command's output": "an output of savi inspect",
                "a user's file": f"not written by {RUN_COMMAND[command]}"}[intruder]
    assert expected in line
    assert snapshot(tmp_path) == before and snapshot(world) == inputs


@pytest.mark.parametrize("command", list(RUN_FOLDERS))
def test_another_command_is_refused_at_a_step_of_a_claimed_run_folder(command, world, tmp_path, monkeypatch, capsys):
    """Pass 23 C #21: a plain ``savi generate`` extended a finished ``savi align`` run's ``iter_0/pairs.jsonl`` (exit
    0), and the run could then not be continued. An output at a step of a run folder another command claimed is
    refused naming that run; at a name the run does not write, it is refused as inside another command's output
    (pass 24 R1 #31: what another command writes there changes the run's folder all the same)."""
    out = tmp_path / "run"
    _claimed_run(command, world, out, monkeypatch, capsys)
    places, said = RUN_FOLDERS[command][2], f"at a step of the {RUN_COMMAND[command]} run in {out}"
    before = snapshot(tmp_path)
    if places["plain"]:  # inside a folder the run makes
        code, _, err = savi(capsys, "recipes", "cp", "tiny_demo", out / places["plain"] / "r.yaml")
        assert code == 1
        assert_one_line_error(err, f"error: {out / places['plain'] / 'r.yaml'}: ", said)
    if places.get("product"):  # at a product another command makes for the run
        code, _, err = savi(capsys, "inspect", world / "data/pairs.jsonl", "--out", out / places["product"][0],
                            "--no-progress")
        assert code == 1
        assert_one_line_error(err, f"error: {out / places['product'][0]}: ", said)
    # pass 23 replay: the writers that ask only the place question (no mark of their own) were let in
    targets = ([out / places["plain"] / "x"] if places["plain"] else []) + (
        [out / places["product"][0]] if places.get("product") else [])
    for target in targets:
        for argv in (["eval", "fixture", target, "-n", "1", "--benchmark", "egoschema"],
                     ["eval", "run", "--data-root", world / "eval-data", "--", "--model", "savi_video",
                      "--model_args", f"pretrained={world / 'model'},num_frames=4", "--tasks", "savi_egoschema",
                      "--limit", "1", "--output_path", target]):
            code, _, err = savi(capsys, *argv)
            assert code == 1, (argv, err)
            assert_one_line_error(err, f"error: {target}: ", said)
    code, _, err = savi(capsys, "recipes", "cp", "tiny_demo", out / "mine.yaml")
    assert code == 1, err
    assert_one_line_error(err, f"error: {out / 'mine.yaml'}: DEST lies inside {out}, {RUN_COMMAND[command]}'s output")
    assert snapshot(tmp_path) == before
