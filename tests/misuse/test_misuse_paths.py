"""Misuse: paths that point somewhere else than they seem.

* ``--data-root`` confines folder inputs too: a symlink inside the input folder (to a file, or a folder) that
  leaves the data root is skipped as ``outside_data_root`` and counted, never decoded.
* A FIFO, a directory, a socket or a broken symlink given as a video is named as what it is -- never opened (a
  FIFO would block forever) and never reported as "file not found" -- by the decoder, by generation and by the
  training dataset.
* A run folder whose path holds characters that lmms-eval's ``--model_args`` parser reads as syntax (a comma, a
  quote, ``=``, brackets) still reaches lmms-eval as the right folder.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
from misuse_kit import assert_one_line_error, clip, pair, qa_item, savi

from savi_plugin.eval.command import PATH_SYNTAX
from savi_plugin.video.decode import VideoDecodeError, read_frames
from tests.builders import read_jsonl, write_jsonl

KINDS = ["fifo", "directory", "socket", "broken-symlink"]
NAMED = {"fifo": "is a FIFO (named pipe)", "directory": "is a directory", "socket": "is a socket",
         "broken-symlink": "is a broken symbolic link"}


def make_special(kind: str, path: Path) -> Path:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        path.symlink_to(path.with_name("gone.mp4"))
    return path


@pytest.fixture(scope="module")
def specials(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sp")  # short: a socket path is limited to ~100 bytes
    clip(folder / "good.mp4")
    for kind in KINDS:
        make_special(kind, folder / f"{kind}.mp4")
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_the_decoder_names_what_a_non_file_is(kind, specials):
    with pytest.raises(VideoDecodeError) as err:
        read_frames(specials / f"{kind}.mp4", 4)
    assert NAMED[kind] in str(err.value) and "not found" not in str(err.value)


@pytest.fixture(scope="module")
def generation_with_specials(specials, tiny_llava_onevision, tmp_path_factory):
    from savi_plugin.cli import main

    out = tmp_path_factory.mktemp("gen") / "pairs.jsonl"
    manifest = write_jsonl(out.with_name("qa.jsonl"), [qa_item("good", specials / "good.mp4")]
                           + [qa_item(kind, specials / f"{kind}.mp4") for kind in KINDS])
    code = main(["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--input", str(manifest),
                 "--output", str(out), "--num-frames", "4", "--no-progress", "--option", "answer_format=raw",
                 "--option", "num_perturbations=1", "--option", "max_new_tokens=6"])
    return code, json.loads(out.with_name("pairs.jsonl.report.json").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_generation_counts_a_non_file_video_as_what_it_is(kind, generation_with_specials):
    code, report = generation_with_specials
    assert code == 0 and report["complete"]
    listed = {e["item"]: e for e in report["failed"] + report["skipped"]}
    # a broken link names no file: missing_video (skipped), as a file not found; the other kinds are not videos
    expected = ("missing_video", "skipped") if kind == "broken-symlink" else ("decode_error", "failed")
    where = "skipped" if kind == "broken-symlink" else "failed"
    assert (listed[kind]["reason"], where) == expected and kind in {e["item"] for e in report[where]}
    assert NAMED[kind] in listed[kind]["detail"]
    assert "good" not in listed


@pytest.mark.parametrize("kind", KINDS)
def test_the_training_dataset_names_a_non_file_video(kind, specials, tiny_llava_onevision, tmp_path):
    from savi_plugin.data import DataError
    from savi_plugin.models import load_backend
    from savi_plugin.training.dataset import PreferenceDataset

    lm = load_backend(tiny_llava_onevision, num_frames=4)
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair("ok", specials / "good.mp4"),
                                                  pair("bad", specials / f"{kind}.mp4")])
    with pytest.raises(DataError) as err:
        PreferenceDataset(data, lm.tokenizer, lm.end_of_turn, bad_records="raise")
    assert (err.value.line, err.value.field) == (2, "video")
    assert NAMED[kind] in err.value.message and "not found" not in err.value.message
    dataset = PreferenceDataset(data, lm.tokenizer, lm.end_of_turn, bad_records="skip")
    assert [i.record.id for i in dataset.items] == ["ok"] and NAMED[kind] in dataset.skipped[0]["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_pair_page_names_what_a_non_file_video_is(kind, specials, tmp_path, capsys):
    """Pass 18 B #8: ``savi inspect`` pages said "video not found" of a folder, FIFO or device that is there."""
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair("bad", specials / f"{kind}.mp4")])
    code, out, err = savi(capsys, "inspect", data, "--out", tmp_path / "site", "--no-progress")
    assert code == 0, err
    pages = "".join(p.read_text() for p in (tmp_path / "site").rglob("*.html"))
    assert NAMED[kind] in pages, pages[-2000:]
    assert "video not found" not in pages


# ------------------------------------------------------------------------------------------------ a file looked up
#: commands that look for a file of a known name in a folder they are given: (what the special node stands in for,
#: the argv given the folder, the words said when no such file is there at all)
LOOKUPS = {
    "suite folder's table.json": ("s/table.json", lambda d: ["eval", "compare", d / "s", d / "s"],
                                  "no suite table here"),
    "table.json named": ("s/table.json", lambda d: ["eval", "compare", d / "s" / "table.json", d / "s"],
                         "no suite table here"),
    "run's trainer_state.json": ("run/trainer_state.json", lambda d: ["plot", d / "run"], "no train_report.json"),
    "checkpoint's trainer_state.json": ("run/checkpoint-2/trainer_state.json", lambda d: ["plot", d / "run"],
                                        "no train_report.json"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lookup", LOOKUPS)
def test_a_file_looked_up_by_name_is_named_as_what_it_is(lookup, kind, tmp_path_factory, capsys):
    """Pass 11, B #24: ``savi eval compare s1 ff`` with ``ff/table.json`` a FIFO or a folder said "no suite table
    here", and ``savi plot`` "no train_report.json, ... or trainer_state.json" with a FIFO ``trainer_state.json``
    there: what is there is named (``data.files.file_problem``) and never opened (a FIFO would block)."""
    import signal

    folder = tmp_path_factory.mktemp("lk")  # short: a socket path is limited to ~100 bytes
    where, argv, absent = LOOKUPS[lookup]
    (folder / where).parent.mkdir(parents=True)
    make_special(kind, folder / where)

    def opened(*_):
        raise AssertionError("a FIFO was opened (blocked)")

    old = signal.signal(signal.SIGALRM, opened)
    signal.alarm(20)
    try:
        code, _, err = savi(capsys, *argv(folder))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert code == 1, err
    line = assert_one_line_error(err, str(folder / where), NAMED[kind])
    assert absent not in line, line


# ------------------------------------------------------------------------------------------------ data root
@pytest.mark.parametrize("command", ["generate", "train", "inspect", "eval-run", "eval-suite"])
@pytest.mark.parametrize("root", ["missing", "a file", "a loop"])
def test_a_data_root_that_is_not_a_folder_is_a_configuration_error(command, root, tiny_llava_onevision, tmp_path,
                                                                   capsys):
    """A --data-root that does not exist made every item a `decode_error: file not found` and created the output
    (red team 6): it is one line, exit 2, before anything is written."""
    work = tmp_path / "work"
    work.mkdir()
    video = clip(tmp_path / "v.mp4")
    write_jsonl(tmp_path / "qa.jsonl", [qa_item("q0", video)])
    write_jsonl(tmp_path / "pairs.jsonl", [pair("a", video)])
    bad = work / "nowhere"
    if root == "a file":
        bad.write_text("not a folder\n")
    if root == "a loop":  # pass 19 N11: said not to exist
        os.symlink("nowhere2", bad)
        os.symlink("nowhere", work / "nowhere2")
    before = sorted(p.name for p in work.iterdir())
    argv = {"generate": ["generate", "--generator", "rrpo", "--model", tiny_llava_onevision, "--input",
                         tmp_path / "qa.jsonl", "--output", work / "p.jsonl", "--num-frames", "4", "--no-progress",
                         "--data-root", bad],
            "train": ["train", "tiny_demo", "--model", tiny_llava_onevision, "--data", tmp_path / "pairs.jsonl",
                      "--output-dir", work / "t", "train.max_steps=1", f"train.data_root={bad}"],
            "inspect": ["inspect", tmp_path / "pairs.jsonl", "--out", work / "site", "--no-progress",
                        "--data-root", bad],
            "eval-run": ["eval", "run", "--data-root", bad, "--", "--model", "savi_video", "--model_args",
                         f"pretrained={tiny_llava_onevision},num_frames=4", "--tasks", "savi_egoschema",
                         "--output_path", work / "res"],
            "eval-suite": ["eval", "suite", "savi_egoschema", "--model", tiny_llava_onevision, "--adapter",
                           tiny_llava_onevision, "--data-root", bad, "--out", work / "suite"]}[command]
    code, _, err = savi(capsys, *argv)
    assert code == 2, err
    assert_one_line_error(err, str(bad), {"missing": "does not exist", "a file": "folder",
                                          "a loop": "is a loop of symbolic links"}[root])
    assert sorted(p.name for p in work.iterdir()) == before


@pytest.mark.parametrize("escape", ["file-symlink", "folder-symlink", "dotdot-symlink"])
def test_data_root_confines_folder_inputs(escape, tiny_llava_onevision, tmp_path, capsys):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "videos").mkdir(parents=True)
    outside.mkdir()
    clip(root / "videos" / "mine.mp4")
    clip(outside / "secret.mp4", seed=1)
    if escape == "file-symlink":
        (root / "videos" / "link.mp4").symlink_to(outside / "secret.mp4")
    elif escape == "folder-symlink":
        (root / "videos" / "more").symlink_to(outside, target_is_directory=True)
    else:
        (root / "videos" / "link.mp4").symlink_to(Path("..") / ".." / "outside" / "secret.mp4")
    out = tmp_path / "pairs.jsonl"
    code, _, err = savi(capsys, "generate", "--generator", "videosavi", "--model", tiny_llava_onevision,
                        "--input", root / "videos", "--output", out, "--data-root", root, "--num-frames", "4",
                        "--no-progress", "--option", "num_questions=1", "--option", "max_new_tokens=6",
                        "--option", "min_edit_distance=0.0")
    assert code == 0, err
    report = json.loads(out.with_name("pairs.jsonl.report.json").read_text())
    escaped = [e for e in report["skipped"] if e["reason"] == "outside_data_root"]
    if escape == "folder-symlink":  # a symlinked sub-folder is not descended into: its files are no input
        assert escaped == [] and report["counts"]["items"] == 1
    else:
        assert len(escaped) == 1 and "outside the data root" in escaped[0]["detail"]
        assert report["counts"]["by_reason"]["outside_data_root"] == 1
    records = read_jsonl(out) if out.exists() else []
    assert all("secret" not in r["video"] and "link" not in r["video"] and "more" not in r["video"] for r in records)


# ------------------------------------------------------------------------------------------------ lmms-eval args
#: what a hostile or careless path can hold: each character lmms-eval re-parses, a keyword it would inject
#: (``, limit=2``, ``,output_path=<elsewhere>``), a space and non-ASCII letters
SYNTAX_NAMES = [f"runs{c}a" for c in sorted(PATH_SYNTAX)] + ["su, limit=2 ü", "s2,output_path=ELSEWHERE",
                                                             "p q,é=1"]


@pytest.mark.parametrize("name", SYNTAX_NAMES)
def test_every_path_reaches_lmms_eval_intact_through_the_one_command_builder(name, tmp_path):
    """Model, adapter and output folder, each named with lmms-eval's syntax, parse back (with lmms-eval's own
    parsers: ``--model_args``, and ``--output_path`` as it appends it to ``--hf_hub_log_args``) to exactly the
    paths given; the links are gone after the call."""
    from lmms_eval.utils import simple_parse_args_string

    from savi_plugin.eval.command import flag_value, savi_video_command

    elsewhere = tmp_path / "elsewhere"
    run = tmp_path / name.replace("ELSEWHERE", str(elsewhere))
    model, adapter, output = run / "iter_0" / "model", run / "iter_0" / "train", run / "eval" / "lmms_eval"
    model.mkdir(parents=True)
    adapter.mkdir()
    (model / "config.json").write_text("{}")
    with savi_video_command(model, ["savi_mvbench"], output, adapter=adapter, num_frames=4) as command:
        parsed = simple_parse_args_string(flag_value(command, "--model_args"))
        tracker = simple_parse_args_string("," + f"output_path={flag_value(command, '--output_path')}")
        assert set(parsed) == {"pretrained", "adapter", "num_frames", "dtype"} and parsed["num_frames"] == 4
        assert os.path.realpath(parsed["pretrained"]) == os.path.realpath(model)
        assert os.path.realpath(parsed["adapter"]) == os.path.realpath(adapter)
        assert set(tracker) == {"output_path"} and os.path.realpath(tracker["output_path"]) == os.path.realpath(output)
        links = [parsed["pretrained"], parsed["adapter"], tracker["output_path"]]
    assert not any(os.path.lexists(link) for link in links if PATH_SYNTAX & set(str(run)))
    assert (model / "config.json").exists() and output.is_dir() and not elsewhere.exists()


@pytest.mark.parametrize("name", SYNTAX_NAMES)
def test_a_command_builder_called_without_the_links_refuses_a_path_lmms_eval_would_re_parse(name, tmp_path):
    """No caller can bypass the links: the builders refuse such a path (one line, a configuration error)."""
    from savi_plugin.errors import ConfigurationError
    from savi_plugin.eval.command import lmms_eval_command, savi_video_args

    path = tmp_path / name
    with pytest.raises(ConfigurationError, match="re-parses"):
        savi_video_args(path, ["savi_mvbench"], tmp_path / "out", num_frames=4)
    with pytest.raises(ConfigurationError, match="re-parses"):
        savi_video_args(tmp_path / "m", ["savi_mvbench"], tmp_path / "out", num_frames=4, adapter=path)
    with pytest.raises(ConfigurationError, match="re-parses"):
        savi_video_args(tmp_path / "m", ["savi_mvbench"], path, num_frames=4)
    with pytest.raises(ConfigurationError, match="re-parses"):
        lmms_eval_command(["--model", "savi_video", "--tasks", "savi_mvbench", f"--output_path={path}"])


#: every command that reads a user's data file: argv builder (the file, a scratch folder) -> argv
DATA_READERS = {
    "data validate": lambda f, tmp: ["data", "validate", f],
    "data convert": lambda f, tmp: ["data", "convert", f, tmp / "out.jsonl", "--to", "trl"],
    "inspect": lambda f, tmp: ["inspect", f, "--out", tmp / "site", "--no-progress"],
    "generate": lambda f, tmp: ["generate", "--generator", "rrpo", "--model", tmp / "m", "--input", f, "--output",
                                tmp / "out.jsonl", "--no-progress"],
}
DATA_KINDS = [*KINDS, "char-device"]


@pytest.mark.parametrize("reader,kind", [(r, k) for r in DATA_READERS for k in DATA_KINDS
                                         if (r, k) != ("generate", "directory")])  # a folder of videos is valid
def test_a_data_file_that_is_not_a_file_is_named_as_what_it_is(reader, kind, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("d")  # short: a socket path is limited to ~100 bytes
    path = folder / "in.jsonl"
    if kind == "char-device":
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is: endless if read
        except PermissionError:
            pytest.skip("creating a device node needs root")
    else:
        make_special(kind, path)
    code, out, err = savi(capsys, *DATA_READERS[reader](path, folder))
    assert code != 0 and "Traceback" not in err
    named = NAMED.get(kind, "is a character device")
    assert f"{path}:" in out + err and named in out + err, out + err
    assert not (folder / "out.jsonl").exists() and not (folder / "site").exists()


@pytest.mark.parametrize("command", ["generate", "validate", "inspect"])
def test_a_stored_video_path_starting_with_a_tilde_is_refused_not_read_from_the_home_folder(command, tmp_path,
                                                                                           tiny_llava_onevision,
                                                                                           monkeypatch, capsys):
    """Pass 18 B #11: a manifest's ``~/a.mp4`` was read from ``$HOME/a.mp4`` (another clip), not from the ``~``
    folder beside it; under another user or rank it names another file again. A file reads the same whoever
    reads it: a stored path starting with ``~`` is one line at ``file:line:video`` before any work."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "~").mkdir()
    beside, elsewhere = clip(tmp_path / "~" / "a.mp4", frames=8, seed=1), clip(home / "a.mp4", frames=8, seed=2)
    records = ([qa_item("q0", "~/a.mp4")] if command == "generate" else [pair("p0", "~/a.mp4")])
    write_jsonl(tmp_path / "in.jsonl", records)
    argv = {"generate": ["generate", "--generator", "rrpo", "--model", tiny_llava_onevision, "--input", "in.jsonl",
                         "--output", "out.jsonl", "--num-frames", "4", "--no-progress"],
            "validate": ["data", "validate", "in.jsonl"],
            "inspect": ["inspect", "in.jsonl", "--out", "site", "--no-progress"]}[command]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = savi(capsys, *argv)
    assert code != 0, (out, err)  # inspect too: a file in which no record is a pair draws no site (pass 24 G #11)
    said = (err + out).strip().splitlines()
    assert any("in.jsonl:1:video: path '~/a.mp4' starts with '~', which savi does not expand in a file" in line
               for line in said), said
    assert sorted(p.name for p in tmp_path.iterdir()) == before and beside.exists() and elsewhere.exists()


@pytest.mark.parametrize("argv", [["train", "tiny_demo", "--data", "loop1", "--output-dir", "r", "--model", "m"],
                                  ["plot", "loop1"], ["generate", "merge", "m.jsonl", "loop1"],
                                  ["data", "validate", "loop1"], ["data", "convert", "loop1", "o.jsonl"],
                                  ["inspect", "loop1", "--out", "site", "--no-progress"],
                                  ["generate", "--generator", "rrpo", "--model", "m", "--input", "loop1",
                                   "--output", "o.jsonl"],
                                  ["data", "convert", "in.jsonl", "loop1"],  # pass 18 A #22: as an output
                                  ["inspect", "in.jsonl", "--out", "loop1", "--no-progress"]],
                         ids=lambda a: " ".join(a[:2]) + (" (output)" if a[-1] == "loop1" or "--out" in a else ""))
def test_a_loop_of_symbolic_links_is_named_as_one(argv, tmp_path, monkeypatch, capsys):
    """Pass 18 A #20, #21: a link loop given as an input was "not found" (train, plot) or an unexpected
    ``RuntimeError: Symlink loop from ...`` (merge); every command names it as a loop, in one line, and writes
    nothing."""
    monkeypatch.chdir(tmp_path)
    os.symlink("loop2", "loop1")
    os.symlink("loop1", "loop2")
    write_jsonl(tmp_path / "in.jsonl", [pair("p0", "v.mp4")])
    code, out, err = savi(capsys, *argv)
    assert code != 0 and "Traceback" not in err, err
    said = [line for line in (err + out).splitlines() if "loop1" in line]
    assert said and all("is a loop of symbolic links" in line for line in said), (out, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "loop1", "loop2"]


def test_a_video_path_that_can_name_nothing_is_a_missing_video_not_a_decode_error(tiny_llava_onevision, tmp_path,
                                                                                   capsys):
    """Pass 18 B #29: a link loop, a name longer than the file system allows and a path below a file were
    ``decode_error`` with advice about the decode caps; nothing is there, so each is ``missing_video`` (skipped)."""
    folder = tmp_path / "v"
    folder.mkdir()
    good = clip(folder / "good.mp4")
    os.symlink("loop1.mp4", folder / "loop2.mp4")
    os.symlink("loop2.mp4", folder / "loop1.mp4")
    paths = {"loop": folder / "loop1.mp4", "long": folder / ("a" * 300 + ".mp4"), "below a file": good / "x.mp4"}
    manifest = write_jsonl(tmp_path / "qa.jsonl", [qa_item(kind, path) for kind, path in paths.items()])
    out = tmp_path / "pairs.jsonl"
    code, _, err = savi(capsys, "generate", "--generator", "rrpo", "--model", tiny_llava_onevision, "--input",
                        manifest, "--output", out, "--num-frames", "4", "--no-progress")
    assert code == 0, err
    report = json.loads(out.with_name("pairs.jsonl.report.json").read_text())
    assert sorted(e["item"] for e in report["skipped"] if e["reason"] == "missing_video") == sorted(paths)
    assert not report["failed"] and "decode caps" not in err


@pytest.mark.parametrize("argv", [["generate", "--generator", "rrpo", "--model", "m", "--input", "clip.mp4",
                                   "--output", "o.jsonl"],
                                  ["generate", "--generator", "videosavi", "--model", "m", "--input", "clip.mp4",
                                   "--output", "o.jsonl"],
                                  ["data", "validate", "clip.mp4"], ["data", "convert", "clip.mp4", "o.jsonl"],
                                  ["inspect", "clip.mp4", "--out", "site", "--no-progress"],
                                  ["generate", "merge", "o.jsonl", "clip.mp4"]], ids=lambda a: " ".join(a[:2]))
def test_a_video_given_as_the_input_is_named_as_a_video(argv, tmp_path, monkeypatch, capsys):
    """Pass 18 B #31, pass 19 N19: a video given where records are read was parsed as JSON lines and refused as
    "not UTF-8 text (byte 38)" (or shown as a site of 18 bad records); every reader names it a video."""
    monkeypatch.chdir(tmp_path)
    video = clip(tmp_path / "clip.mp4").relative_to(tmp_path)
    code, out, err = savi(capsys, *argv)
    said = "clip.mp4:-:-: is a video file, not a JSON Lines file of records"
    if argv[:2] == ["data", "validate"]:  # lists problems
        assert code != 0 and said in out + err, (out, err)
        return
    assert code != 0
    assert_one_line_error(err, f"{video}:", "is a video file, not a JSON Lines file of records")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize("name", ["bidi\u202e4pm.mp4", "esc\x1b[31mred.mp4", "a<|im_start|>b.mp4"])
def test_a_video_file_name_that_would_be_a_hostile_id_is_refused_before_any_work(name, tmp_path, capsys):
    """Pass 18 B #35: a folder input's file names became item ids and video paths unchecked (ESC, U+202E reached
    the model), while a manifest naming the same id is refused at its line before any work."""
    folder = tmp_path / "v"
    folder.mkdir()
    clip(folder / "good.mp4")
    clip(folder / name)
    code, _, err = savi(capsys, "generate", "--generator", "videosavi", "--model", tmp_path / "m", "--input",
                        folder, "--output", tmp_path / "o.jsonl")
    assert code != 0
    assert_one_line_error(err, ":-:id: the file's name is the item's id and video path, and it contains")
    assert not (tmp_path / "o.jsonl").exists()


#: every command that takes a model, with MODEL where the model goes (the working folder holds pairs.jsonl,
#: qa.jsonl and v.mp4)
MODEL_COMMANDS = {
    "train": ["train", "tiny_demo", "--model", "MODEL", "--data", "pairs.jsonl", "--output-dir", "out"],
    "train --resume": ["train", "tiny_demo", "--model", "MODEL", "--data", "pairs.jsonl", "--output-dir", "out",
                       "--resume"],
    "generate": ["generate", "--generator", "rrpo", "--model", "MODEL", "--input", "qa.jsonl", "--output", "p.jsonl"],
    "generate --backend": ["generate", "--generator", "rrpo", "--model", "MODEL", "--backend", "llava_onevision",
                           "--input", "qa.jsonl", "--output", "p.jsonl"],
    "align": ["align", "tiny_demo", "model.path=MODEL", "data.qa=qa.jsonl", "align.eval_every_iteration=false",
              "--out", "al"],
    "eval suite": ["eval", "suite", "savi_mvbench", "--model", "MODEL", "--adapter", "ad", "--out", "s"],
}


@pytest.mark.parametrize("form", ["typo", "absolute", "moved recipe", "broken link", "broken hub-like link"])
@pytest.mark.parametrize("command", list(MODEL_COMMANDS))
def test_a_model_path_naming_nothing_is_one_message_in_every_command(command, form, tmp_path, capsys, monkeypatch):
    """Red team 23 E, row 41: a model path naming nothing was "identity.model changed content" on a resume,
    huggingface_hub's "Repo id must be in the form ..." for a new output, and "no such file or folder" only in
    ``savi generate``. One rule (``data.identity.check_model_reference``) says it in every command, before any
    output is claimed; a name of a hub id's form (``org/name``) stays the hub's -- unless it is a broken symbolic
    link here (pass 24 F, rows 58/59: taken for a hub id), said with its target. A recipe command says it at the
    key or flag that gave the model (``config.checkpoint.check_model``: ``my.yaml: model.path: ...``)."""
    monkeypatch.chdir(tmp_path)
    clip(tmp_path / "v.mp4")
    write_jsonl(tmp_path / "pairs.jsonl", [pair("a", "v.mp4")])
    (tmp_path / "qa.jsonl").write_text(json.dumps(qa_item("q1", "v.mp4")) + "\n")
    argv = list(MODEL_COMMANDS[command])
    model = {"typo": "models/sub/typo", "absolute": str(tmp_path / "models" / "typo"), "broken link": "m/x/wl2",
             "broken hub-like link": "m/wlink"}.get(form)
    if form == "moved recipe":  # a recipe's model.path is relative to the recipe's folder
        Path("r2/sub").mkdir(parents=True)
        Path("r2/sub/my.yaml").write_text("extends: tiny_demo\nmodel:\n  path: ../d/models/warm\n")
        model = str(tmp_path / "r2" / "d" / "models" / "warm")
        if not command.startswith(("train", "align")):
            pytest.skip(f"savi {command} takes no recipe")
        argv = [a.replace("tiny_demo", "r2/sub/my.yaml") for a in argv]
        argv = [a for a in argv if a != "model.path=MODEL"]
        if "--model" in argv:
            del argv[argv.index("--model"):argv.index("--model") + 2]
    if command == "eval suite":  # its data are checked first
        assert savi(capsys, "eval", "fixture", "ev", "--benchmark", "mvbench", "-n", "1")[0] == 0
        argv += ["--data-root", "ev"]
        Path("ad").mkdir()
        Path("ad/adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": model}))
    missing = f"{model}: no such file or folder"
    if form.startswith("broken"):  # a link to nothing, relative to its own folder
        Path(model).parent.mkdir(parents=True)
        os.symlink("base/models/warm", model)
        missing = f"{model}: is a broken symbolic link (to base/models/warm)"  # as every reader says it
    before = sorted(tmp_path.rglob("*"))
    code, _, err = savi(capsys, *[a.replace("MODEL", model) for a in argv])
    assert code == 2, err[-2000:]
    expected = f"error: {missing}"
    if command == "generate":  # a flag's value: said at the flag, with what would load (config.checkpoint)
        expected = (f"error: --model: {missing}; give a local model folder (nothing is downloaded), or a hub id "
                    f"with its backend (--backend)")
    if command.startswith(("train", "align")):  # a recipe command: said at the key or flag that gave it
        key = "--model" if "--model" in argv else "model.path"
        line = assert_one_line_error(err)
        assert line.startswith("error: ") and f"{key}: {missing}; give a local model" in line
    else:
        assert assert_one_line_error(err) == expected
    assert sorted(tmp_path.rglob("*")) == before  # nothing claimed


def test_a_hub_id_is_not_a_path_naming_nothing():
    from savi_plugin.data.identity import check_model_reference, could_be_hub_id

    for name in ("org/name", "name", "lmms-lab/LLaVA-Video-7B-Qwen2", "tiny://llava_onevision"):
        check_model_reference(name)
    for name in ("models/sub/typo", "./m", "../m", "/abs/m", "~/m", "a//b", "org/na..me"):
        assert not could_be_hub_id(name), name
