"""``savi plot RUN_DIR``: the training curves of a real tiny ``savi train`` run, finished or killed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from savi_plugin.cli import main
from savi_plugin.inspection.curves import check_history, read_log_history, series
from tests.builders import tiny_rrpo_run


@pytest.fixture(scope="module")
def run_dir(tiny_llava_onevision, synthetic_samples, tmp_path_factory) -> Path:
    folder = tiny_rrpo_run(tmp_path_factory.mktemp("plot"), tiny_llava_onevision, synthetic_samples[:2],
                           save_strategy="steps", save_steps=3)
    return folder / "out"


def test_plot_draws_every_logged_metric_of_a_finished_run(run_dir, capsys):
    from PIL import Image

    history, source = read_log_history(run_dir)
    assert source.name == "train_report.json"
    assert [step for step, _ in series(history, "loss")] == [1, 2, 3]
    assert main(["plot", str(run_dir)]) == 0
    out = capsys.readouterr().out
    png = run_dir / "training_curves.png"
    for panel in ("loss", "reward margin", "KL(ref || policy)", "accuracy of the margin's sign"):
        assert panel in out
    image = np.asarray(Image.open(png).convert("L"))
    assert image.shape[1] > 4 * image.shape[0] / 2 and image.std() > 10  # several panels, not a blank canvas
    # every number a real run logs that has a range is within it, and each count it logs has a count's range
    from savi_plugin.data.metric_ranges import logged_range

    counted = {name for row in history for name, value in row.items() if name != "step" and isinstance(value, int)
               and not isinstance(value, bool)}
    assert "nonfinite_steps" in counted and all(logged_range(name) for name in counted), counted


def test_plot_reads_a_killed_run_from_its_last_checkpoint(run_dir, tmp_path, capsys):
    import shutil

    killed = tmp_path / "killed"
    shutil.copytree(run_dir / "checkpoint-3", killed / "checkpoint-3")
    history, source = read_log_history(killed)
    assert source == killed / "checkpoint-3" / "trainer_state.json" and series(history, "rewards/margins")
    assert main(["plot", str(killed), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").is_file()
    assert main(["plot", str(killed), "--out", str(tmp_path / "c.png")]) == 0  # its own earlier plot is replaced


@pytest.mark.parametrize("torn", ["", '{"global_step": '])
def test_plot_of_a_run_killed_while_saving_reads_the_checkpoint_before_the_torn_one(torn, run_dir, tmp_path):
    """Pass 18 A #43: a killed run whose last ``trainer_state.json`` was empty was refused as "invalid JSON";
    training skips that checkpoint and continues from the one before, and so does the plot."""
    import shutil

    killed = tmp_path / "killed"
    for step in (3, 6):
        shutil.copytree(run_dir / "checkpoint-3", killed / f"checkpoint-{step}")
    (killed / "checkpoint-6" / "trainer_state.json").write_text(torn)
    history, source = read_log_history(killed)
    assert source == killed / "checkpoint-3" / "trainer_state.json" and series(history, "rewards/margins")
    (killed / "checkpoint-6" / "trainer_state.json").write_text('{"global_step": 6,}')  # not torn: edited
    with pytest.raises(Exception, match="checkpoint-6/trainer_state.json"):
        read_log_history(killed)


def test_plot_refuses_what_is_not_a_run_in_one_line(run_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "taken.png").write_bytes(b"user's")
    (tmp_path / "pairs.jsonl").write_text("{}\n")  # a file given as RUN_DIR: named, never locked beside
    for argv, code in ((["plot", str(empty)], 1), (["plot", str(run_dir), "--out", str(tmp_path / "x.jpg")], 2),
                       (["plot", str(run_dir), "--out", str(tmp_path / "x.jsonl")], 2),  # a wrong suffix: exit 2
                       (["plot", str(run_dir), "--out", str(tmp_path / "taken.png")], 1),
                       (["plot", str(tmp_path / "pairs.jsonl")], 1), (["plot", str(tmp_path / "absent")], 1)):
        assert main(argv) == code, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")
    assert (tmp_path / "taken.png").read_bytes() == b"user's"
    (empty / "train_report.json").write_text(json.dumps({"loss_type": "dpo",
                                                         "log_history": [{"step": 1, "epoch": 1.0}]}))
    assert main(["plot", str(empty)]) == 1


def test_plot_of_a_step_folder_names_the_training_run_below_it(run_dir, tmp_path, capsys):
    """Pass 26 R5 #49: ``savi plot ab/AB/dpo`` (an ablate step, whose training run is ``dpo/train``) was refused as
    an ``--out`` at a step of the ablate run, a flag the user never gave. A folder that holds no run but one below
    it is named with the folder to give; nothing is written."""
    import shutil

    step = tmp_path / "step"
    shutil.copytree(run_dir, step / "train")
    assert main(["plot", str(step)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"give that folder (savi plot {step / 'train'})" in err[0], err
    assert sorted(p.name for p in step.iterdir()) == ["train"]
    assert main(["plot", str(step / "train")]) == 0 and (step / "train" / "training_curves.png").is_file()


#: a report's start naming a plugin's loss (float32's range): what follows is the log history checked
_PLUGIN = '{"loss_type": "a_plugin_loss", "log_history": '


@pytest.mark.parametrize("text, fragment", [("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
                                            (_PLUGIN + '[{"step": 1, "loss": NaN}]}', "NaN is not a JSON number"),
                                            ("[1, 2]", "a list, not an object"),
                                            # red team 9, row 31: numpy's "arange: cannot compute length"
                                            (_PLUGIN + '[{"step": 1, "loss": -1e308}, {"step": 2, "loss": 1e308}]}',
                                             "log_history[0].loss: must be a number within +-3.403e+38"),
                                            (_PLUGIN + '[{"step": 1, "loss": 1}, {"step": 1000000000000000000, '
                                             '"loss": 1}]}', "log_history[1].step: must be a whole number of steps"),
                                            (_PLUGIN + '[{"step": 1, "rewards/margins": "x"}]}',
                                             "log_history[0].rewards/margins: must be a number")])
def test_a_run_report_beyond_the_input_limits_is_named_in_one_line(text, fragment, tmp_path, capsys):
    """A 100,000-deep train_report.json said 'input nested too deeply (RecursionError)', naming no file
    (red team 4): the report is read through the untrusted-input boundary."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_report.json").write_text(text)
    capsys.readouterr()
    assert main(["plot", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run / 'train_report.json'}") and fragment in err[0], err


def test_a_trainer_state_above_the_document_cap_is_refused_before_it_is_read(tmp_path, capsys, monkeypatch):
    """A 3 GiB trainer_state.json was read whole (red team 8, B33): a document is refused from its size, naming
    the file, the cap and its variable, exit 2 (the variable is what to correct). The file is sparse: nothing is
    written."""
    run = tmp_path / "run"
    (run / "checkpoint-1").mkdir(parents=True)
    state = run / "checkpoint-1" / "trainer_state.json"
    with open(state, "wb") as fh:
        fh.truncate(3 * 2**30)  # sparse: no block is written
    capsys.readouterr()
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {state}: 3.00 GiB, above the 256.00 MiB cap"), err
    assert "$SAVI_MAX_DOCUMENT_BYTES" in err[0]
    monkeypatch.setenv("SAVI_MAX_DOCUMENT_BYTES", "1KiB")  # the cap is the variable's; a small file over it too
    state.write_text(json.dumps({"log_history": [{"step": 1, "loss": 0.5, "pad": "x" * 2000}]}))
    assert main(["plot", str(run)]) == 2
    assert "2.01 KiB, above the 1.00 KiB cap" in capsys.readouterr().err


def _report(run: Path, rows: list[dict], loss_type: str = "rrpo") -> None:
    run.mkdir()
    (run / "train_report.json").write_text(json.dumps({"loss_type": loss_type, "log_history": rows}))


_TRAIN = {"loss": 0.69, "learning_rate": 1e-4, "epoch": 0.5, "rewards/accuracies": 0.5, "kl/chosen": 0.1}


@pytest.mark.parametrize("rows, fragment", [
    # pass 11, B33: an accuracy of -5 and 7 was drawn; each plotted field has its own range, from FIELDS
    ([{**_TRAIN, "rewards/accuracies": -5.0, "step": 1}, {**_TRAIN, "rewards/accuracies": 7.0, "step": 2}],
     "log_history[0].rewards/accuracies: must be a number in [0, 1]"),
    ([{**_TRAIN, "step": 1}, {**_TRAIN, "rewards/accuracies": 7.0, "step": 2}],
     "log_history[1].rewards/accuracies: must be a number in [0, 1]"),
    ([{**_TRAIN, "step": 1}, {"eval_loss": 0.7, "eval_rewards/accuracies": 1.5, "eval_runtime": 1.0, "step": 1}],
     "log_history[1].eval_rewards/accuracies: must be a number in [0, 1]"),
    ([{**_TRAIN, "kl/chosen": -0.5, "step": 1}], "log_history[0].kl/chosen: must be a number in [-0.01, "),
    ([{**_TRAIN, "loss": -2.0, "step": 1}], "log_history[0].loss: must be a number in [-0.01, "),
    ([{**_TRAIN, "learning_rate": -1e-4, "step": 1}], "log_history[0].learning_rate: must be a number in [0, "),
    ([{**_TRAIN, "epoch": -1, "step": 1}], "log_history[0].epoch: must be a number in [0, "),
    # pass 12, B30: what is not drawn is checked too, each by its own range from the one table
    ([{**_TRAIN, "grad_norm": -3.0, "step": 1}], "log_history[0].grad_norm: must be a number in [0, "),
    ([{**_TRAIN, "rrpo/chosen_phrase_tokens": -4.5, "step": 1}],
     "log_history[0].rrpo/chosen_phrase_tokens: must be a number in [0, "),
    ([{**_TRAIN, "step": 1}, {"eval_loss": 0.7, "eval_ddpo/changed_tokens": -1.0, "step": 1}],
     "log_history[1].eval_ddpo/changed_tokens: must be a number in [0, "),
    ([{**_TRAIN, "nonfinite_steps": 2.5, "step": 1}],
     "log_history[0].nonfinite_steps: must be a whole number of steps in [0, 4294967295]"),
    ([{**_TRAIN, "step": 1}, {"train_loss": -7.0, "train_runtime": 1.0, "step": 1}],
     "log_history[1].train_loss: must be a number in [-0.01, "),
    # pass 11, B34: a Trainer logs a training row once per step, and steps never go back
    ([{**_TRAIN, "step": 1}, {**_TRAIN, "loss": 99.0, "step": 1}],
     "log_history[1].step: step 1 repeats the step of log_history[0]"),
    ([{**_TRAIN, "step": 10 - i} for i in range(4)],
     "log_history[1].step: step 9 comes after step 10 of log_history[0]"),
    ([{**_TRAIN, "step": 2}, {"eval_loss": 0.7, "eval_runtime": 1.0, "step": 1}],
     "log_history[1].step: step 1 comes after step 2 of log_history[0]"),
    # pass 12, B32: a row without a loss but with a training metric is the step's training row too
    ([{**_TRAIN, "step": 1}, {"rewards/margins": 55.0, "step": 1}, {**_TRAIN, "step": 2}],
     "log_history[1].step: step 1 repeats the step of log_history[0]"),
])
def test_a_logged_value_out_of_its_range_or_order_is_named_in_one_line(rows, fragment, tmp_path, capsys):
    _report(tmp_path / "run", rows)
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'run' / 'train_report.json'}: {fragment}"), err
    assert not (tmp_path / "run" / "training_curves.png").exists()


def test_what_a_trainer_writes_is_plotted(tmp_path, capsys):
    """What transformers' Trainer writes passes: a KL of float32 rounding below 0 at the first step (-3.3e-7 in a
    real tiny run), a periodic evaluation and ``evaluate()`` after training at one step, the summary row at the
    last training row's step; a loss registered by another package has no lower bound."""
    rows = [{"eval_loss": 0.69, "eval_runtime": 1.0, "step": 0},
            {**_TRAIN, "kl/chosen": -3.3e-7, "learning_rate": 0.0, "step": 1}, {**_TRAIN, "step": 2},
            {"eval_loss": 0.6, "eval_rewards/accuracies": 1.0, "eval_runtime": 1.0, "step": 2},
            {"eval_loss": 0.6, "eval_rewards/accuracies": 1.0, "eval_runtime": 1.0, "step": 2},
            {"train_runtime": 3.0, "train_loss": 0.65, "epoch": 1.0, "step": 2}]
    rows[1].update({"grad_norm": 0.0, "nonfinite_steps": 0, "truncated": 2.0, "rrpo/chosen_phrase_tokens": 4.5,
                    "rrpo/kl": -3.3e-7, "rrpo/preference_loss": 0.69, "total_flos": 1e15})
    _report(tmp_path / "run", rows)
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert "accuracy of the margin's sign" in capsys.readouterr().out
    check_history([{**_TRAIN, "loss": -2.0, "step": 1}], "mine.json", loss_type="a_plugin_loss")  # no raise


def test_a_killed_runs_loss_is_checked_by_the_loss_its_checkpoint_names(tmp_path, capsys):
    """A checkpoint's trainer_state.json has no loss type: the run's configuration stored beside it names it."""
    from savi_plugin.data.identity import CHECKPOINT_FILE

    checkpoint = tmp_path / "run" / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"log_history": [{**_TRAIN, "loss": -2.0, "step": 1}]}))
    (checkpoint / CHECKPOINT_FILE).write_text(json.dumps({"run": "r", "config": {"training": {"loss_type": "dpo"}}}))
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "c.png")]) == 1
    assert f"{checkpoint / 'trainer_state.json'}: log_history[0].loss: must be a number in [-0.01" in \
        capsys.readouterr().err


def test_every_document_a_real_run_writes_has_its_shape(run_dir):
    """What ``savi train`` writes -- its report, each checkpoint's Trainer state and run identity -- is what
    :mod:`savi_plugin.training.logged` declares, so the reader's whole-document check never refuses a real run."""
    from savi_plugin.data.identity import CHECKPOINT_FILE
    from savi_plugin.training.logged import (
        CHECKPOINT_IDENTITY,
        TRAIN_REPORT,
        TRAINER_STATE,
    )

    checkpoints = sorted(run_dir.glob("checkpoint-*"))
    assert checkpoints
    assert TRAIN_REPORT.problem(json.loads((run_dir / "train_report.json").read_text()), "") is None
    for checkpoint in checkpoints:
        assert TRAINER_STATE.problem(json.loads((checkpoint / "trainer_state.json").read_text()), "") is None
        assert CHECKPOINT_IDENTITY.problem(json.loads((checkpoint / CHECKPOINT_FILE).read_text()), "") is None


def _loss_name_variants() -> list[str]:
    """Names that read as a loss savi ships but are not it: another case, full-width, an invisible character
    inside, a Cyrillic look-alike; and names no configuration writes: a bidi override, spaces around."""
    from savi_plugin.data.metric_ranges import NONNEGATIVE_LOSSES

    lookalike = str.maketrans({"o": "\u043e", "p": "\u0440", "a": "\u0430", "c": "\u0441", "e": "\u0435"})
    variants = []
    for name in sorted(NONNEGATIVE_LOSSES):
        variants += [name.upper(), name.title(), "".join(chr(ord(c) + 0xFEE0) for c in name),
                     f"{name[0]}\u200b{name[1:]}", f"\u202e{name}", f" {name}", f"{name}\n"]
        if name.translate(lookalike) != name:
            variants.append(name.translate(lookalike))
    return variants


@pytest.mark.parametrize("loss_type", _loss_name_variants() + [None, 3, True, "", ["rrpo"], {"name": "rrpo"}])
def test_a_report_naming_no_loss_as_a_run_writes_it_is_refused(loss_type, tmp_path, capsys):
    """Pass 15 B #26: ``RRPO``, ``\\u202errpo`` or null as the loss type let a loss of -5 be drawn: the loss a
    report names is a name a run writes, and one that reads as a shipped loss is exactly that loss's name."""
    rows = [{**_TRAIN, "step": 1}, {**_TRAIN, "step": 2}, {**_TRAIN, "loss": -5.0, "step": 3}]
    _report(tmp_path / "run", rows, loss_type)
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'run' / 'train_report.json'}: loss_type: "), err
    assert not (tmp_path / "run" / "training_curves.png").exists()


@pytest.mark.parametrize("loss_type, code", [("rrpo", 1), ("dpo", 1), ("a_plugin_loss", 0), ("bogus_loss", 0)])
def test_a_negative_loss_is_drawn_only_for_a_loss_savi_does_not_ship(loss_type, code, tmp_path, capsys):
    """A name of no installed loss is a plugin's, plotted on another machine: its loss may be negative."""
    _report(tmp_path / "run", [{**_TRAIN, "step": 1}, {**_TRAIN, "loss": -5.0, "step": 2}], loss_type)
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run")]) == code
    if code:
        assert "log_history[1].loss: must be a number in [-0.01" in capsys.readouterr().err


_KINDS = {"a list": [1, 2], "a string": "x", "a number": 3, "null": None, "a switch (true/false)": True}


@pytest.mark.parametrize("file", ["train_report.json", "checkpoint-2/trainer_state.json", "trainer_state.json"])
@pytest.mark.parametrize("where", ["entry", "history"])
@pytest.mark.parametrize("kind", sorted(_KINDS) + ["an object"])
def test_a_log_history_of_another_kind_is_named_in_its_file(file, where, kind, tmp_path, capsys):
    """Pass 15 B #27/#28: an entry that is a list was skipped, and a log history that is an object read as no file
    at all: the file is named with the field that is not what a Trainer writes."""
    if (kind, where) in (("an object", "entry"), ("a list", "history")):
        pytest.skip("the kind a Trainer writes there")
    value = {"a": 1} if kind == "an object" else _KINDS[kind]
    history = [{**_TRAIN, "step": 1}, value] if where == "entry" else value
    path = tmp_path / "run" / file
    path.parent.mkdir(parents=True)
    document = {"log_history": history, "global_step": 2}
    if file == "train_report.json":
        document["loss_type"] = "rrpo"
    path.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    field = "log_history[1]" if where == "entry" else "log_history"
    assert len(err) == 1 and err[0].startswith(f"error: {path}: {field}: {kind}, not "), err
    assert "no train_report.json" not in err[0]


def test_a_checkpoints_stored_loss_type_is_a_name_a_run_writes(tmp_path, capsys):
    """A killed run's loss is named by the configuration stored beside its checkpoint: the same rule."""
    from savi_plugin.data.identity import CHECKPOINT_FILE

    checkpoint = tmp_path / "run" / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"log_history": [{**_TRAIN, "loss": -2.0, "step": 1}]}))
    for loss_type, fragment in (("DPO", "'DPO' reads as 'dpo'"), (None, "not a string")):
        (checkpoint / CHECKPOINT_FILE).write_text(json.dumps({"run": "r", "config": {"training": {"loss_type":
                                                                                                   loss_type}}}))
        capsys.readouterr()
        assert main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "c.png")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {checkpoint / CHECKPOINT_FILE}: config.training.loss_type: "
                                                   f"{fragment}"), err


def _set_identity(checkpoint: Path, **changes) -> None:
    from savi_plugin.data.identity import CHECKPOINT_FILE

    record = json.loads((checkpoint / CHECKPOINT_FILE).read_text())
    for key, value in changes.items():
        if key == "learning_rate":
            record["config"]["training"]["learning_rate"] = value
        else:
            record[key] = value
    (checkpoint / CHECKPOINT_FILE).write_text(json.dumps(record))


#: what was copied into a killed run's folder -> the words naming it (each through the rule a resume uses)
_FOREIGN = {
    "another run's checkpoint under a later name": ("checkpoint-9", {}, "holds step 3, not 9 (renamed"),
    "another run's checkpoint, its record's step edited": ("checkpoint-9", {"step": 9}, "holds step 3, not 9"),
    "a checkpoint of another configuration": ("checkpoint-3", {"run": "0" * 64, "learning_rate": 0.5},
                                              "another configuration (training.learning_rate: 0.5 ->"),
    "a complete checkpoint without its identity": ("checkpoint-3", None, "carries no savi run identity"),
}


@pytest.mark.parametrize("case", sorted(_FOREIGN))
def test_a_checkpoint_the_run_did_not_write_is_refused_not_drawn_as_its_curves(case, run_dir, tmp_path, capsys):
    """Pass 20, #47: another run's checkpoint copied into a killed run's folder as ``checkpoint-200`` (its record
    names another run and step 171) was drawn as the run's curves, exit 0. The checkpoint to read is chosen by
    the rule a resume uses, so it is refused in one line naming it; the run's own checkpoint is drawn."""
    import shutil

    from savi_plugin.data.identity import CHECKPOINT_FILE

    killed = tmp_path / "killed"
    shutil.copytree(run_dir, killed, ignore=shutil.ignore_patterns("*.lock", "training_curves.png*"))
    (killed / "train_report.json").unlink()
    assert main(["plot", str(killed), "--out", str(tmp_path / "own.png")]) == 0  # its own: drawn
    name, changes, words = _FOREIGN[case]
    foreign = killed / name
    if foreign.exists():
        shutil.rmtree(foreign)
    shutil.copytree(run_dir / "checkpoint-3", foreign)
    if changes is None:
        (foreign / CHECKPOINT_FILE).unlink()
    else:
        _set_identity(foreign, **changes)
    capsys.readouterr()
    assert main(["plot", str(killed), "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {foreign}: ") and words in err[0], err
    assert "drawn as this run's curves" in err[0] and not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("report_change, words", [
    ({"run": "0" * 64}, "was written by another run (its run 000000000000, this folder's "),
    ({"run": None, "loss_type": "dpo"}, "was written by another run (its loss 'dpo', this folder's run trains 'rrpo')")])
def test_a_report_another_run_wrote_is_refused_not_drawn_as_its_curves(report_change, words, run_dir, tmp_path,
                                                                      capsys):
    """Pass 21 E #12: the demo's DPO ``train_report.json`` copied over a finished RRPO run's was drawn as that run's
    curves, exit 0. Each report carries its run's fingerprint (an older one without it, its loss), compared with
    the folder's mark."""
    import shutil

    finished = tmp_path / "finished"
    shutil.copytree(run_dir, finished, ignore=shutil.ignore_patterns("*.lock", "training_curves.png*"))
    report = json.loads((finished / "train_report.json").read_text())
    assert isinstance(report["run"], str) and len(report["run"]) == 64  # every report names its run
    assert main(["plot", str(finished), "--out", str(tmp_path / "own.png")]) == 0
    for key, value in report_change.items():
        if value is None:
            report.pop(key)
        else:
            report[key] = value
    (finished / "train_report.json").write_text(json.dumps(report))
    capsys.readouterr()
    assert main(["plot", str(finished), "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {finished / 'train_report.json'}: {words}"), err
    assert not (tmp_path / "c.png").exists()


def test_a_checkpoint_whose_trainer_state_was_replaced_is_refused_as_a_resume_refuses_it(run_dir, tmp_path, capsys):
    """Pass 21 E #29: another run's ``trainer_state.json`` copied into a killed run's newest checkpoint was drawn as
    its curves (exit 0) while a resume of the same folder refused the checkpoint: plot checks the checkpoint's
    files against its record as a resume does."""
    import shutil

    killed = tmp_path / "killed"
    shutil.copytree(run_dir, killed, ignore=shutil.ignore_patterns("*.lock", "training_curves.png*"))
    (killed / "train_report.json").unlink()
    state = killed / "checkpoint-3" / "trainer_state.json"
    document = json.loads(state.read_text())
    document["log_history"][0]["loss"] = 0.123
    state.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["plot", str(killed), "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {killed / 'checkpoint-3'}: trainer_state.json changed after "
                                               f"the run wrote it"), err
    assert "its log history would not be the one this run logged" in err[0] and not (tmp_path / "c.png").exists()
