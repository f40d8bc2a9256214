"""The one builder of lmms-eval command lines (:mod:`savi_plugin.eval.command`) and ``savi eval run``'s reading of
lmms-eval's flags."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from savi_plugin.cli import main
from savi_plugin.eval.command import (
    INSPECTED_FLAGS,
    flag_value,
    misread,
    savi_video_command,
)


@pytest.mark.parametrize("flag, full", [("--output", "--output_path"), ("--output_p=x", "--output_path"),
                                        ("--model_arg", "--model_args"), ("--model_arg=pretrained=m", "--model_args"),
                                        ("--task", "--tasks"), ("--dev", "--device"), ("--include", "--include_path")])
def test_savi_eval_run_refuses_an_abbreviation_of_a_flag_it_checks(flag, full, tmp_path, capsys):
    """lmms-eval's argparse takes a unique prefix of a long option; savi reads its flags by their full names, so
    an abbreviation would slip past the output check: refused before lmms-eval starts (exit 2, one line)."""
    argv = ["eval", "run", "--", "--model", "savi_video", "--model_args", "pretrained=m,num_frames=4",
            "--tasks", "savi_mvbench_action_antonym", "--limit", "1"]
    argv += [flag] if "=" in flag else [flag, str(tmp_path / "x")]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag.split("=")[0] in err and full in err and "in full" in err
    assert not (tmp_path / "x").exists()


def test_the_inspected_flags_are_the_ones_savi_reads():
    assert {"--model_args", "--output_path", "--tasks", "--device"} <= set(INSPECTED_FLAGS)


@pytest.mark.parametrize("name", ["-s14", "--out", "-x,y=1"])
def test_a_path_starting_with_a_dash_reaches_lmms_eval_as_a_link(name, tmp_path, monkeypatch):
    """``--output_path -s14`` is read by argparse as a missing value and an option: such a path goes as a link."""
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    assert misread(name)
    with savi_video_command(model, ["savi_mvbench"], name, num_frames=4) as command:
        output = flag_value(command, "--output_path")
        assert not output.startswith("-") and os.path.realpath(output) == os.path.realpath(tmp_path / name)
    assert (tmp_path / name).is_dir() and not os.path.lexists(output)


#: sampling settings savi_video would not apply as written (pass 23 F #43: ``temperature=5`` alone decoded greedily
#: while lmms-eval recorded temperature 5 as used), each with the words its refusal starts with
UNAPPLIED_SAMPLING = {
    "temperature=5": "temperature=5 samples only with do_sample=true",
    "temperature=0.7,do_sample=false": "temperature=0.7 samples only with do_sample=true",
    "temperature=1e-3,max_new_tokens=4": "temperature=0.001 samples only with do_sample=true",
    "top_p=0.9": "top_p=0.9 applies only when sampling",
    "top_p=0.5,temperature=0": "top_p=0.5 applies only when sampling",
    "do_sample=true,temperature=0": "do_sample=true with temperature=0 decodes greedily",
}
SAMPLING = ("while lmms-eval records",)
#: settings applied as written: greedy ones, and sampling with do_sample=true
APPLIED = ["temperature=0", "top_p=1", "do_sample=false", "temperature=0,do_sample=false", "temperature=5,do_sample=true",
           "temperature=0.7,top_p=0.9,do_sample=true", "do_sample=true", "max_new_tokens=4"]


@pytest.mark.parametrize("text", list(UNAPPLIED_SAMPLING))
@pytest.mark.parametrize("command", ["run", "suite"])
def test_a_sampling_setting_savi_video_would_not_apply_is_refused_naming_it(text, command, tmp_path, capsys,
                                                                           monkeypatch):
    """Pass 23 F #43: ``--gen_kwargs temperature=5`` without ``do_sample`` decoded greedily while the results file
    recorded temperature 5 as used. As a key savi_video does not apply (``top_k``), it is refused, by ``savi eval
    run`` (flag and ``--config``) and ``savi eval suite`` alike, before anything starts."""
    from savi_plugin.eval import command as lmms_command

    monkeypatch.setattr(lmms_command, "lmms_eval_command", lambda *a, **k: pytest.fail("lmms-eval was started"))
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path / "data"))
    capsys.readouterr()
    if command == "suite":
        code = main(["eval", "suite", "savi_mvbench_action_antonym", "--model", str(tmp_path / "m"), "--adapter",
                     str(tmp_path / "a"), "--out", str(tmp_path / "out"), "--gen-kwargs", text])
    else:
        code = main(["eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={tmp_path}",
                     "--tasks", "savi_mvbench_action_antonym", "--output_path", str(tmp_path / "out"),
                     "--gen_kwargs", text])
    err = capsys.readouterr().err.strip()
    flag = "--gen-kwargs" if command == "suite" else "--gen_kwargs"
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {flag} {text!r}: {UNAPPLIED_SAMPLING[text]}") and SAMPLING[0] in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", APPLIED)
def test_generation_settings_savi_video_applies_as_written_are_accepted(text):
    from savi_plugin.cli.eval import check_gen_kwargs_text

    check_gen_kwargs_text(text, "--gen_kwargs")


@pytest.mark.parametrize("gen_kwargs, message", [("max_new_tokens=inf", "max_new_tokens (gen_kwargs) must be a whole"),
                                                 ("max_new_tokens=nan", "must be a whole number, got nan"),
                                                 ("max_new_tokens=2000000", "must be >= 1 and <= 1048576"),
                                                 ("max_new_tokens=0", "must be >= 1"),
                                                 ("temperature=inf", "must be a finite number, got inf"),
                                                 ("temperature=-0.5", "temperature (gen_kwargs) must be >= 0"),
                                                 ("top_p=0", "must be > 0 and <= 1"), ("top_p=1.5", "got 1.5"),
                                                 # pass 12 B #52: the last of the two was used with no word
                                                 ("max_new_tokens=16,max_new_tokens=1", "max_new_tokens= is given twice")])
def test_a_bad_suite_gen_kwargs_is_refused_before_the_suite_folder_is_claimed(gen_kwargs, message, tmp_path,
                                                                             capsys):
    out = tmp_path / "suite"
    capsys.readouterr()
    code = main(["eval", "suite", "savi_mvbench_action_antonym", "--model", str(tmp_path / "m"), "--adapter",
                 str(tmp_path / "a"), "--out", str(out), "--gen-kwargs", gen_kwargs])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and gen_kwargs in err
    assert not out.exists()


@pytest.mark.parametrize("gen_kwargs, message", [("num_beams=4294967295", "num_beams (gen_kwargs) must be 1"),
                                                 ("num_beams=0", "must be 1"),
                                                 ("top_k=3", "top_k (gen_kwargs): not applied by savi_video"),
                                                 ("until=5", "until (gen_kwargs) must be a stop string"),
                                                 ("max_new_tokens=16,max_new_tokens=1", "is given twice"),
                                                 *[(text, SAMPLING[0]) for text in UNAPPLIED_SAMPLING]])
def test_a_gen_kwargs_savi_video_would_not_apply_is_refused_before_lmms_eval_starts(gen_kwargs, message, tmp_path,
                                                                                   capsys, monkeypatch):
    """tester B pass 11 #18: ``--gen_kwargs num_beams=4294967295`` ran with exit 0, neither checked nor applied,
    while lmms-eval recorded it as the setting used; refused (exit 2, one line) before lmms-eval starts."""
    from savi_plugin.eval import command

    monkeypatch.setattr(command, "lmms_eval_command", lambda *a, **k: pytest.fail("lmms-eval was started"))
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path / "data"))
    capsys.readouterr()
    code = main(["eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={tmp_path}",
                 "--tasks", "savi_mvbench_action_antonym", "--output_path", str(tmp_path / "out"),
                 "--gen_kwargs", gen_kwargs])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and f"--gen_kwargs {gen_kwargs!r}" in err, err


@pytest.mark.parametrize("out", ["-al14", "r,x=1"])
def test_a_dry_run_shows_the_link_the_real_run_passes(out, tmp_path, monkeypatch, capsys):
    """``savi align --dry-run --out=-al14``: the eval step's command shows the temporary link, not a path lmms-eval
    would read as an option."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["align", "tiny_demo", "--dry-run", f"--out={out}"]) == 0
    shown = capsys.readouterr()
    line = next(x for x in (shown.out + shown.err).splitlines() if "--output_path" in x)
    assert f"--output_path <temporary link to '{out}/iter_0/eval/lmms_eval'>" in line


# ------------------------------------------------------------------------------------------------ typed values
#: folder names lmms-eval's value typing turns into something else, and look-alikes it leaves as text
TYPED_NAMES = ["1e5", "True", "false", "TRUE", "07", "0", "nan", "inf", "-inf", "+1", "1_000", " 1", "1.", ".5",
               "\u0661\u0662", "\u00bd", "None", "0x1f", "1e5x", "null", "yes", "1e", "e5", "1,0"]
_NAME_CHARS = "0123456789eE.+-_ xXabfnortuTFNIlsy,=[]'\"\u00bd\u0661"


def _lmms_eval_value(text: str):
    """lmms-eval's own reading of ``text`` as a ``k=v`` value, in the first and in the last place (or the
    exception it raises)."""
    from lmms_eval.utils import simple_parse_args_string

    try:
        first = simple_parse_args_string(f"k={text},num_frames=4")
        last = simple_parse_args_string(f"num_frames=4,k={text}")
    except Exception as exc:  # noqa: BLE001 - lmms-eval's own failure is a reading too
        return type(exc)
    return first.get("k"), last.get("k"), set(first) == set(last) == {"k", "num_frames"}


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.sampled_from(TYPED_NAMES), st.text(_NAME_CHARS, min_size=1, max_size=8),
                 st.floats().map(str), st.integers().map(str)))
def test_misread_agrees_with_lmms_eval_s_own_parser(name):
    """A name :func:`misread` passes comes back from lmms-eval 0.7.3's ``simple_parse_args_string`` as exactly that
    text, wherever it stands; and a name it refuses for its value alone is one lmms-eval does retype."""
    from savi_plugin.eval.command import PATH_SYNTAX

    from savi_plugin.eval.model import _none  # savi_video's own reading of a model_args value

    value = _lmms_eval_value(name)
    if not misread(name):
        assert value == (name, name, True), (name, value)
        assert _none(name) is not None, name  # and savi_video reads it as that path
    elif not (PATH_SYNTAX & set(name) or name.startswith("-") or name != name.rstrip()):
        assert value != (name, name, True) or _none(name) is None, name


@pytest.mark.parametrize("name", ["1e5", "True", "07", "nan", "None", "none", "NULL", "nUlL", "0x1f"])
def test_a_folder_named_like_a_value_reaches_savi_video_unchanged(name, tmp_path, monkeypatch):
    """Model, adapter and output folders named ``1e5``, ``True``, ``none`` ... (relative, as a user types them)
    parse back, through lmms-eval's own parser and then savi_video's (``none``/``null`` in any case is "no
    adapter" to it: red team pass 13, B20 tabled the base model as adapter ``none``), to the folders given: as
    links where either would read the name otherwise, as they are where neither would."""
    from lmms_eval.utils import simple_parse_args_string

    from savi_plugin.eval.model import _none  # savi_video's own reading of a model_args value

    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    assert misread(name) == (name != "0x1f")  # lmms-eval types the numbers and booleans, savi_video the rest
    with savi_video_command(name, ["savi_mvbench"], name, adapter=name, num_frames=4) as command:
        parsed = simple_parse_args_string(flag_value(command, "--model_args"))
        tracker = simple_parse_args_string(f",output_path={flag_value(command, '--output_path')}")
        assert parsed["num_frames"] == 4 and isinstance(parsed["pretrained"], str)
        for got in (parsed["pretrained"], parsed["adapter"], tracker["output_path"]):
            assert os.path.realpath(got) == os.path.realpath(tmp_path / name), (name, got)
        assert _none(parsed["pretrained"]) is not None and _none(parsed["adapter"]) is not None


@settings(max_examples=200, deadline=None)
@given(st.text(",=\"'{}[]\\ ab", max_size=14))
def test_split_model_args_agrees_with_lmms_eval_s_own_split(text):
    """:func:`split_args_string` is lmms-eval 0.7.3's split of ``--model_args`` (``_smart_comma_split``), on every
    arrangement of its structure characters."""
    from lmms_eval.utils import _smart_comma_split

    from savi_plugin.eval.command import split_args_string

    assert split_args_string(text) == _smart_comma_split(text)
    assert [item.strip() for item in split_args_string(text, strip=False)] == _smart_comma_split(text)


@pytest.mark.parametrize("model_args", ["num_frames=4,pretrained=mw ", "pretrained=mw ,num_frames=4"])
def test_a_model_args_path_whose_name_ends_in_white_space_is_refused(model_args, tmp_path, monkeypatch, capsys):
    """Pass 11 B #30: ``pretrained=mw `` beside a folder ``mw``: lmms-eval strips the value and evaluated the other
    folder with no word."""
    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mw ").mkdir()
    (tmp_path / "mw").mkdir()
    code = main(["eval", "run", "--data-root", str(tmp_path), "--", "--model", "savi_video", "--tasks",
                 "savi_mvbench_action_antonym", "--model_args", model_args, "--output_path", "out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "pretrained='mw ' names a path whose name ends in white space" in err[0] and "pretrained='mw'" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mw", "mw "]


@pytest.mark.parametrize("name", ["1e5", "True", "07"])
def test_savi_eval_run_links_a_model_args_path_lmms_eval_would_retype(name, tmp_path, monkeypatch):
    """The user's own ``--model_args pretrained=1e5,adapter=True`` (folders so named, given relative): through
    :func:`safe_model_args`, lmms-eval's own parser reads back the folders, the other items as written; a path
    lmms-eval reads as text is left as it is."""
    from lmms_eval.utils import simple_parse_args_string

    from savi_plugin.eval.command import safe_model_args

    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    given = f"pretrained={name},adapter={name},num_frames=4,device=cpu"
    with safe_model_args("savi_video", given) as args:
        parsed = simple_parse_args_string(args)
        assert parsed["num_frames"] == 4 and parsed["device"] == "cpu"
        for key in ("pretrained", "adapter"):
            assert isinstance(parsed[key], str) and os.path.samefile(parsed[key], tmp_path / name)
            # lmms-eval names its results folder by the path's last two parts: the same as for the folder itself
            assert parsed[key].split("/")[-2:] == [tmp_path.name, name]
    with safe_model_args("savi_video", "pretrained=org/model,adapter=./1e5") as args:
        assert args == "pretrained=org/model,adapter=./1e5"
    with safe_model_args("other_model", given) as args:
        assert args == given


@pytest.mark.parametrize("model_args, message", [
    ("pretrained={tmp}/a,b/model,num_frames=4", "'b/model' is no key=value: lmms-eval splits --model_args at every ','"),
    ("pretrained=\"{tmp}/a,b/model\",num_frames=4", "lmms-eval's --model_args split cannot carry this path"),
    ("pretrained={tmp}/m,adapter=[x]", "adapter=[x]: lmms-eval's --model_args split cannot carry"),
    ("pretrained=1e6,num_frames=4", "pretrained=1e6: no such file or folder (and lmms-eval would read this value as "
                                    "1000000.0, not as a path)"),
    # a key given twice: lmms-eval evaluates the last and files the results under the first's name
    ("pretrained={tmp}/m,num_frames=2,pretrained={tmp}/n,num_frames=4",
     "--model_args: pretrained= is given twice (pretrained={tmp}/m and pretrained={tmp}/n)"),
    ("pretrained={tmp}/m,num_frames=2, num_frames=2", "--model_args: num_frames= is given twice (num_frames=2 and num_frames=2)"),
    # adapter=$ADAPTER with the variable unset: the base model was evaluated under the adapter's label
    ("pretrained={tmp}/m,num_frames=4,adapter=", "--model_args adapter= is empty (what adapter=$VAR gives when the "
                                                 "variable is unset)"),
    ("pretrained=,num_frames=4", "--model_args pretrained= is empty"),
])
def test_savi_eval_run_refuses_a_model_args_value_lmms_eval_cannot_carry(model_args, message, tmp_path, capsys,
                                                                          monkeypatch):
    """A path with a ``,`` (bare or quoted) or quotes/brackets in ``--model_args``, or a missing folder lmms-eval would
    retype: one line and exit 2 before lmms-eval starts or the output folder is made."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a,b" / "model").mkdir(parents=True)
    capsys.readouterr()
    code = main(["eval", "run", "--", "--model", "savi_video", "--model_args", model_args.format(tmp=tmp_path),
                 "--tasks", "savi_mvbench_action_antonym", "--limit", "1", "--output_path", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message.format(tmp=tmp_path) in err, err
    assert not (tmp_path / "out").exists()


#: lmms-eval's own writer of ``*_results.json`` (EvaluationTracker.save_results_aggregated), run under a file size
#: limit: Python ignores SIGXFSZ, so a write past the limit fails as a full disk does (EFBIG)
_WRITE_UNDER_LIMIT = """
import resource, sys
from lmms_eval.loggers.evaluation_tracker import EvaluationTracker
tracker = EvaluationTracker(output_path=sys.argv[1])
tracker.general_config_tracker.model_name_sanitized = "m"
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
results = {"results": {"t": {"accuracy,none": 50.0}}, "pad": "x" * int(sys.argv[3])}
tracker.save_results_aggregated(results=results, samples=None, datetime_str="2026-01-01T00-00-00")
"""


@pytest.mark.parametrize("limit, pad, reason", [
    (0, 0, "the disk, a disk quota or the file size limit was full"),  # the failed flush is silent: empty file
    (200, 20000, "file too large (file size limit)"),  # a write past the buffer fails; lmms-eval logs OSError(27)
])
def test_a_results_file_lmms_eval_could_not_write_is_a_full_disk_naming_it(limit, pad, reason, tmp_path):
    """lmms-eval writes its results file without closing it, so a full disk leaves an empty or cut-short file and
    (for a small file) no message at all: the one line names the file and the full disk (or limit), the file is
    removed, and the run is not reported as a foreign results file."""
    import sys

    from savi_plugin.eval.command import EvalRunError, run_judged

    out = tmp_path / "out"
    command = [sys.executable, "-c", _WRITE_UNDER_LIMIT, str(out), str(limit), str(pad)]
    with pytest.raises(EvalRunError) as err:
        run_judged(command, env=dict(os.environ), output_path=out, tasks=["t"], log_path=tmp_path / "log")
    message = str(err.value)
    results = out / "m" / "2026-01-01T00-00-00_results.json"
    assert f"{results}: {reason} while lmms-eval wrote it (removed, " in message, message
    assert "\n" not in message and "not a results file" not in message and not results.exists()


@pytest.mark.parametrize("text, sign, full", [('{"results": {"t": {"accuracy', None, True),  # cut short
                                              ("", None, True), ('{"results": 1} trailing', None, False),  # foreign
                                              ('{"results": {"t"', 28, True)])
def test_only_an_empty_or_cut_short_results_file_or_a_logged_full_disk_is_called_a_full_disk(text, sign, full,
                                                                                             tmp_path):
    """A results file that is complete JSON but not lmms-eval's stays "not a results file", kept; an empty or cut
    short one (or any, when lmms-eval's output showed ENOSPC) is the full disk, removed."""
    from savi_plugin.eval.command import results_problem

    results = tmp_path / "m" / "x_results.json"
    results.parent.mkdir()
    results.write_text(text)
    problem = results_problem(tmp_path, ["t"], 0.0, sign)
    reason = "no space left on the device" if sign else "the disk, a disk quota or the file size limit was full"
    assert (f"{results}: {reason} while lmms-eval wrote it" in problem) is full, problem
    assert results.exists() is not full and ("not a results file" in problem) is not full


@pytest.mark.parametrize("sign", [None, 27])
@pytest.mark.parametrize("cut", [True, False])
def test_a_samples_file_cut_short_or_a_logged_full_disk_fails_a_run_whose_results_are_complete(sign, cut, tmp_path):
    """Pass 21 F #37: under ``ulimit -f`` lmms-eval logged ``OSError(27, 'File too large')`` while writing its
    samples, kept 17.5 of 24 lines and exited 0 with a complete results file: the run read as a success. A cut
    samples file (removed) or a full disk in lmms-eval's output is the full disk."""
    from savi_plugin.eval.command import results_problem

    results = tmp_path / "m" / "x_results.json"
    results.parent.mkdir()
    results.write_text(json.dumps({"results": {"t": {"accuracy,none": 50.0}}}))
    samples = tmp_path / "m" / "x_samples_t.jsonl"
    samples.write_text('{"doc_id": 0}\n{"doc_id": 1' if cut else '{"doc_id": 0}\n')
    problem = results_problem(tmp_path, ["t"], 0.0, sign)
    if not cut and sign is None:
        assert problem is None and samples.exists()
        return
    reason = "file too large (file size limit)" if sign else "the disk, a disk quota or the file size limit was full"
    where = f"{samples} (removed)" if cut else str(tmp_path)
    assert problem.startswith(f"{where}: {reason} while lmms-eval wrote"), problem
    assert samples.exists() is not cut


def test_a_configuration_error_inside_savi_video_ends_savi_eval_run_with_exit_status_2(tmp_path, capsys):
    """A SettingError leaving savi_video's constructor ends lmms-eval's process with exit status 2 and one line,
    and savi, judging the run, reports it as a configuration error (exit 2), as when found before lmms-eval starts
    (red team B, "exit codes depend on where the check runs"). The process is savi_video's constructor as lmms-eval
    calls it; lmms-eval's own start (~20 s) is left out."""
    import subprocess
    import sys

    from savi_plugin.errors import ConfigurationError
    from savi_plugin.eval.command import EvalSettingError, run_judged

    command = [sys.executable, "-c", "from savi_plugin.eval.model import SaviVideo\n"
               "SaviVideo.create_from_arg_string('pretrained=a,pretrained=b', {'batch_size': 1})"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "savi_video: --model_args: pretrained= is given twice (pretrained=a and pretrained=b); give each key once "
        "(lmms-eval would use the last and name its results after the first)"], done.stderr
    with pytest.raises(EvalSettingError) as err:
        run_judged(command, env=dict(os.environ), output_path=tmp_path / "out", tasks=["t"],
                   log_path=tmp_path / "log")
    assert isinstance(err.value, ConfigurationError) and err.value.exit_code == 2
    assert str(err.value).startswith("evaluation did not finish (exit status 2): lmms-eval wrote no results file")
    assert "pretrained= is given twice" in (tmp_path / "log").read_text()


def _exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's refusal of a flag
        return exc.code


LIMIT_COMMANDS = {
    "savi eval suite": lambda out, v: ["eval", "suite", "savi_mvbench_action_antonym", "--model", "m", "--adapter", "a",
                                       "--out", str(out), "--limit", v],
    "savi eval run": lambda out, v: ["eval", "run", "--", "--model", "savi_video", "--model_args", "pretrained=m",
                                     "--tasks", "savi_mvbench_action_antonym", "--output_path", str(out), f"--limit={v}"],
    "savi align": lambda out, v: ["align", "tiny_demo", "--dry-run", "--out", str(out), f"eval.limit={v}"],
}


@pytest.mark.parametrize("command", list(LIMIT_COMMANDS))
@pytest.mark.parametrize("value, says", [("1.5", "got 1.5 (lmms-eval would cut it to 1 per task)"),
                                         ("1.0", "1.0 is ambiguous"), ("1e0", "1.0 is ambiguous"),
                                         ("0", "got 0 (lmms-eval would evaluate every item"), ("-2", "got -2"),
                                         ("-1", "got -1 (lmms-eval would evaluate every item"),
                                         ("inf", "finite"), ("nan", "nan")])
def test_an_eval_limit_lmms_eval_would_cut_or_misread_is_a_configuration_error(command, value, says, tmp_path,
                                                                                capsys):
    """lmms-eval reads a --limit below 1 as a fraction and any other as int(limit) (evaluator_utils.
    get_sample_size): 1.5 evaluated 1 item with no word (tester B #47). Every place an eval limit enters refuses it
    by one rule, naming the flag or key (exit 2, one line, nothing written)."""
    capsys.readouterr()
    assert _exit_status(LIMIT_COMMANDS[command](tmp_path / "out", value)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]  # argparse: usage, then it
    assert len(err) == 1 and says in err[0] and ("eval.limit" if command == "savi align" else "--limit") in err[0], err
    assert not (tmp_path / "out").exists()


def test_an_eval_limit_is_a_whole_count_or_a_fraction_as_lmms_eval_reads_it():
    from savi_plugin.config.values import ConfigError
    from savi_plugin.eval.command import check_limit, savi_video_args

    for good in ("1", "3", "2.0", "0.5", "1e-3", 1, 0.25, 7):
        check_limit(good)
    for every in ("-1", "0", -1, 0):  # lmms-eval's "every item": written by giving no limit (red team 23, row 26)
        with pytest.raises(ConfigError, match=r"got -?[01] \(lmms-eval would evaluate every item"):
            check_limit(every)
    assert flag_value(savi_video_args("m", ["t"], "o", num_frames=4, limit=2), "--limit") == "2"
    with pytest.raises(ConfigError, match="^limit: .*got 2.5"):  # the builder every savi caller goes through
        savi_video_args("m", ["t"], "o", num_frames=4, limit=2.5)
    with pytest.raises(ConfigError, match="must be a number, got 'x'"):
        check_limit("x")


def test_kept_results_name_a_linked_model_by_the_stored_path_rule(tmp_path, monkeypatch):
    """``savi align --out=-al``'s eval step passes ``-al/iter_0/model`` as a temporary link (a leading ``-`` is an
    option to lmms-eval); lmms-eval's kept ``*_results.json`` stores what it was given. After the run it names the
    model as a file inside the run folder names a path inside it (relative, so the folder moves whole: tester B
    #45), and nothing else in the file changes."""
    import json

    from savi_plugin.data.paths import path_from_file, run_folder
    from savi_plugin.eval.command import name_linked_paths, safe_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-al" / "iter_0" / "model").mkdir(parents=True)
    out = tmp_path / "-al" / "iter_0" / "eval" / "lmms_eval"
    (out / "m").mkdir(parents=True)
    with run_folder("-al"), safe_paths("-al/iter_0/model") as (link,):
        assert str(link) != "-al/iter_0/model" and os.path.samefile(link, "-al/iter_0/model")
        results = out / "m" / "x_results.json"
        kept = {"results": {"t": {"acc,none": 0.5}}, "model_name": str(link),
                "config": {"model_args": f"pretrained={link},num_frames=4", "limit": 1.0}}
        results.write_text(json.dumps(kept))
        (out / "m" / "other_results.json").write_text('{"results": {"t"')  # cut short: left to the judge
        assert name_linked_paths(out) == [results]
    data = json.loads(results.read_text())
    assert data["model_name"] == "../../../model" and path_from_file(data["model_name"], results).samefile(
        tmp_path / "-al" / "iter_0" / "model")
    assert data["config"] == {"model_args": "pretrained=../../../model,num_frames=4", "limit": 1.0}
    assert data["results"] == kept["results"] and (out / "m" / "other_results.json").read_text() == '{"results": {"t"'
    assert name_linked_paths(out) == []  # no live link: nothing to name


@pytest.mark.parametrize("flag", ["--adapter", "--model"])
def test_an_empty_suite_model_or_adapter_is_refused_as_empty(flag, tmp_path, capsys):
    """Pass 12 B #51: ``--adapter ''`` (an unset variable) was read as the working folder and named ``adapter ``."""
    argv = {"--model": str(tmp_path / "m"), "--adapter": str(tmp_path / "a")}
    argv[flag] = ""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:  # every empty argument is one usage line (cli._empty_argument)
        main(["eval", "suite", "savi_mvbench_action_antonym", "--model", argv["--model"], "--adapter",
              argv["--adapter"], "--out", str(tmp_path / "suite")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and f"argument {flag}: an empty value" in err[0], err
    assert not (tmp_path / "suite").exists()


_MALFORMED_ITEMS = {"max_new_tokens": "is no key=value", "=1": "has an empty key", " =1": "has an empty key",
                    "==": "has an empty key", "temperature": "is no key=value"}


@pytest.mark.parametrize("flag", ["--gen_kwargs", "--model_args"])
@pytest.mark.parametrize("item", sorted(_MALFORMED_ITEMS))
@pytest.mark.parametrize("shape", ["{item}", "max_new_tokens=2,{item}", "{item},num_beams=1"])
def test_a_malformed_key_value_item_is_named_with_the_form_key_value(flag, item, shape):
    """pass 13 B #59: ``--gen-kwargs max_new_tokens`` printed Python's ``not enough values to unpack``, ``'=1'`` an
    empty key name: the one item check (:func:`args_items`) names the item and the form ``key=value``."""
    from savi_plugin.config.values import ConfigError
    from savi_plugin.eval.command import args_items

    text = shape.format(item=item)
    with pytest.raises(ConfigError) as err:
        args_items(text, flag)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and repr(item.strip()) in message and "key=value" in message
    assert _MALFORMED_ITEMS[item] in message and flag in message and "unpack" not in message


@pytest.mark.parametrize("item", ["max_new_tokens", "=1"])
def test_a_malformed_suite_gen_kwargs_item_is_one_line_naming_it(item, tmp_path, capsys):
    out = tmp_path / "suite"
    capsys.readouterr()
    code = main(["eval", "suite", "savi_mvbench_action_antonym", "--model", str(tmp_path / "m"), "--out", str(out),
                 "--gen-kwargs", item])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"{item!r}" in err and "key=value" in err, err
    assert "unpack" not in err and not out.exists()


def test_savi_eval_run_removes_the_output_folder_it_made_when_savi_video_refuses_its_arguments(tmp_path, capsys,
                                                                                            monkeypatch):
    """pass 13 B #44: ``--batch_size 0`` was refused by savi_video (exit 2) and an empty ``bs0/`` (absent before)
    was left behind. The process stands for lmms-eval ended by savi_video's refusal: its line and exit status 2
    (that savi_video's constructor ends so: ``test_a_configuration_error_inside_savi_video_ends_...``; a Python
    without imports keeps this case at ~0.1 s). The folder ``savi eval run`` made, with its missing parents, is
    gone; the data root and model folder stay."""
    import sys

    from savi_plugin.eval import command

    refused = [sys.executable, "-c", "import sys\n"
               "print('savi_video: batch_size must be >= 1, got 0', file=sys.stderr)\nraise SystemExit(2)"]
    monkeypatch.setattr(command, "lmms_eval_command", lambda *a, **k: refused)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path / "data"))
    (tmp_path / "m").mkdir()
    out = tmp_path / "runs" / "bs0"
    capsys.readouterr()
    code = main(["eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={tmp_path / 'm'}",
                 "--tasks", "savi_mvbench_action_antonym", "--output_path", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "batch_size must be >= 1, got 0" in err, err
    assert not (tmp_path / "runs").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["data", "m"]


@pytest.mark.parametrize("word", ["NONE", "None", "null"])
def test_savi_eval_run_refuses_a_none_word_that_names_a_folder_here_before_lmms_eval_starts(word, tmp_path, capsys,
                                                                                         monkeypatch):
    """pass 13 B #60: the check savi_video makes (:func:`ambiguous_path_problem`) is made before lmms-eval starts;
    ``adapter=./NONE`` names the folder and passes it."""
    from savi_plugin.eval import command
    from savi_plugin.eval.command import check_model_args

    monkeypatch.setattr(command, "lmms_eval_command", lambda *a, **k: pytest.fail("lmms-eval was started"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / word).mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path / "data"))
    capsys.readouterr()
    code = main(["eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={tmp_path},adapter={word}",
                 "--tasks", "savi_mvbench_action_antonym", "--output_path", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"error: --model_args adapter={word!r} is ambiguous: {word!r} means no adapter to "
                                 f"savi_video, and it also names a folder here; write adapter=./{word} for that path, "
                                 f"or leave adapter= out for none"), err
    assert not (tmp_path / "out").exists()
    assert check_model_args("savi_video", f"pretrained=m,adapter=./{word}") == [("pretrained", "m"),
                                                                                  ("adapter", f"./{word}")]


def test_a_stopped_evaluation_stops_its_lmms_eval_child(tmp_path):
    """Pass 16 A #36: after Ctrl-C, lmms-eval went on for seconds after savi had exited, writing into the output
    savi had already reported on; the child is asked to stop (SIGTERM), and killed after the grace time."""
    import subprocess
    import sys
    import time

    from savi_plugin.eval.command import stopped_with_us

    for ignores_term in (False, True):
        code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)" if ignores_term
                else "import time; time.sleep(60)")
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            with subprocess.Popen([sys.executable, "-c", code]) as proc, stopped_with_us(proc, grace=1.0):
                time.sleep(0.5)
                raise KeyboardInterrupt
        assert proc.poll() is not None and time.monotonic() - start < 10


def test_a_missing_results_file_names_a_file_standing_where_lmms_eval_makes_its_folders(tmp_path):
    """Pass 21 F #52: a user's file at ``<output_path>/m0``: lmms-eval logged a FileExistsError as INFO and wrote no
    results; the line named neither the file nor the cause."""
    from savi_plugin.eval.command import results_problem

    (tmp_path / "m0").write_text("user")
    assert results_problem(tmp_path, ["t"], 0.0, None) == (
        f"lmms-eval wrote no results file ({tmp_path / 'm0'} is a file where lmms-eval makes its folders, "
        f"<output_path>/<model name>/: move it, or give another --output_path)")
    assert (tmp_path / "m0").read_text() == "user"
