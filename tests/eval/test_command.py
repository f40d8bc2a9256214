"""The one builder of lmms-eval command lines (:mod:`savi_plugin.eval.command`) and ``savi eval run``'s reading of
lmms-eval's flags."""

from __future__ import annotations

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


@pytest.mark.parametrize("gen_kwargs, message", [("max_new_tokens=inf", "max_new_tokens (gen_kwargs) must be a whole"),
                                                 ("max_new_tokens=nan", "must be a whole number, got nan"),
                                                 ("max_new_tokens=2000000", "must be >= 1 and <= 1048576"),
                                                 ("max_new_tokens=0", "must be >= 1"),
                                                 ("temperature=inf", "must be a finite number, got inf"),
                                                 ("temperature=-0.5", "temperature (gen_kwargs) must be >= 0"),
                                                 ("top_p=0", "must be > 0 and <= 1"), ("top_p=1.5", "got 1.5")])
def test_a_bad_suite_gen_kwargs_is_refused_before_the_suite_folder_is_claimed(gen_kwargs, message, tmp_path,
                                                                             capsys):
    out = tmp_path / "suite"
    capsys.readouterr()
    code = main(["eval", "suite", "savi_mvbench_action_antonym", "--model", str(tmp_path / "m"), "--adapter",
                 str(tmp_path / "a"), "--out", str(out), "--gen-kwargs", gen_kwargs])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and gen_kwargs in err
    assert not out.exists()


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

    value = _lmms_eval_value(name)
    if not misread(name):
        assert value == (name, name, True), (name, value)
    elif not (PATH_SYNTAX & set(name) or name.startswith("-") or name != name.rstrip()):
        assert value != (name, name, True), name


@pytest.mark.parametrize("name", ["1e5", "True", "07", "nan", "None", "0x1f"])
def test_a_folder_named_like_a_value_reaches_savi_video_unchanged(name, tmp_path, monkeypatch):
    """Model, adapter and output folders named ``1e5``, ``True`` ... (relative, as a user types them) parse back,
    through lmms-eval's own parser, to the folders given: as links where lmms-eval would type the name, as they are
    where it would not."""
    from lmms_eval.utils import simple_parse_args_string

    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    assert misread(name) == (name not in ("None", "0x1f"))  # lmms-eval types all but these two
    with savi_video_command(name, ["savi_mvbench"], name, adapter=name, num_frames=4) as command:
        parsed = simple_parse_args_string(flag_value(command, "--model_args"))
        tracker = simple_parse_args_string(f",output_path={flag_value(command, '--output_path')}")
        assert parsed["num_frames"] == 4 and isinstance(parsed["pretrained"], str)
        for given in (parsed["pretrained"], parsed["adapter"], tracker["output_path"]):
            assert os.path.realpath(given) == os.path.realpath(tmp_path / name), (name, given)
