"""Misuse, generated: a name holding a line break, a control character or a bidi override, in every kind of line a
command prints (its ``error:`` line, a ``savi data validate`` problem line, a summary line, a log warning).

Every case runs the real command in-process (``savi_plugin.cli.main``) on a file or folder whose name holds the
character after a forged ``error:`` text. What must hold: the command prints exactly the lines it prints for a
plain name, none of them holds the raw character, and the name is shown with the character escaped
(:func:`savi_plugin.untrusted.printable`, through the one printer :func:`savi_plugin.cli.say` and the log
formatter :class:`savi_plugin.cli.OneLineFormatter`) -- red team 13, row 15.
"""

from __future__ import annotations

import contextlib
import logging
import re

import pytest

from misuse_kit import savi
from tests.builders import write_jsonl

#: each kind of character that ends or redraws a line, with the escape a message shows for it
CONTROLS = {"line feed": ("\n", "\\n"), "carriage return": ("\r", "\\r"), "tab": ("\t", "\\t"),
            "vertical tab": ("\x0b", "\\x0b"), "form feed": ("\x0c", "\\x0c"), "escape": ("\x1b", "\\x1b"),
            "file separator": ("\x1c", "\\x1c"), "delete": ("\x7f", "\\x7f"), "next line (C1)": ("\x85", "\\x85"),
            "CSI (C1)": ("\x9b", "\\x9b"), "line separator": ("\u2028", "\\u2028"),
            "paragraph separator": ("\u2029", "\\u2029"), "right-to-left override": ("\u202e", "\\u202e"),
            "right-to-left isolate": ("\u2067", "\\u2067"),
            # drawn as nothing: a name holding one reads as another (pass 21 D #20: "train.beta\u200b: unknown key")
            "zero-width space": ("\u200b", "\\u200b"), "variation selector": ("\ufe0f", "\\ufe0f")}

#: every raw character of :data:`CONTROLS` but the line feed that ends each printed line
RAW = re.compile("[" + "".join(ch for ch, _ in CONTROLS.values() if ch != "\n") + "]")


def lines(text: str) -> list[str]:
    """``text``'s lines as a terminal, an editor or a log reader splits them (``str.splitlines``' separators)."""
    assert RAW.search(text) is None, repr(text)
    return text.splitlines()


@contextlib.contextmanager
def own_log_handler():
    """The log handler ``savi`` installs for itself: pytest's capture handlers (added as each test is called) are
    set aside while the command runs (``logging.basicConfig`` adds none where a handler is present), then put
    back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.handlers.extend(handlers)
        root.setLevel(level)


def _error_line(name, tmp_path, capsys):
    code, out, err = savi(capsys, "plot", name)
    assert code == 1 and out == ""
    return lines(err), ["error: {}: RUN_DIR not found; give a `savi train` output folder"]


def _problem_line(name, tmp_path, capsys):
    write_jsonl(tmp_path / name, [{"id": 1.5}])
    code, out, err = savi(capsys, "data", "validate", name)
    assert code == 1
    assert lines(err) == ["0 valid record(s), 1 problem(s) (videos checked to be files, not decoded)"]
    return lines(out), ["{}:1:id: expected a string or an integer, got a number"]


def _summary_line(name, tmp_path, capsys):
    code, out, err = savi(capsys, "recipes", "cp", "tiny_demo", name + ".yaml")
    assert code == 0 and lines(err) == []
    return lines(out), ["copied tiny_demo.yaml to {}.yaml"]


def _log_warning(name, tmp_path, capsys):
    write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "video": "v.mp4", "question": "q?", "chosen": "a cat",
                                        "rejected": "a dog", "chosen_tagged": "a <MASK>cat</MASK>",
                                        "rejected_tagged": "a <MASK>dog</MASK>"}])
    write_jsonl(tmp_path / name, [{"id": "no such pair", "step": 1}])
    code, out, err = savi(capsys, "inspect", "p.jsonl", "--out", "site", "--frames", "0", "--no-progress",
                          "--diagnostics", name)
    assert code == 0 and len(lines(out)) == 1
    return [line.split(" ", 1)[1] for line in lines(err)], [
        "WARNING savi_plugin.inspection.site: {}: 1 row(s) name an id of no pair in p.jsonl: not shown"]


LINES = {"error line": _error_line, "validate problem line": _problem_line, "summary line": _summary_line,
         "log warning": _log_warning}


@pytest.mark.parametrize("where", list(LINES))
@pytest.mark.parametrize("kind", list(CONTROLS))
def test_a_name_holding_a_control_character_stays_inside_its_one_line(where, kind, tmp_path, capsys, monkeypatch):
    raw, escaped = CONTROLS[kind]
    monkeypatch.chdir(tmp_path)
    name = f"bad{raw}error: all good"
    with own_log_handler():
        printed, expected = LINES[where](name, tmp_path, capsys)
    assert printed == [line.format(f"bad{escaped}error: all good") for line in expected]


#: what a command may hand to ``print`` as it is: documents whose encoders escape what they hold (JSON, YAML, the
#: Markdown tables of :func:`savi_plugin.eval.suite.markdown_cell`, the demo's and ablation's number tables)
DOCUMENTS = {"dumps", "safe_dump", "markdown", "format_table", "format_seed_table"}


def test_every_line_a_command_builds_is_printed_through_the_one_printer():
    """A line a command puts together (an f-string, a concatenation, a name) is printed by ``say``, never by
    ``print``: the scan that keeps a command added tomorrow inside the rule."""
    import ast
    from pathlib import Path

    import savi_plugin.cli as cli

    found = []
    for path in sorted(Path(cli.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print" and node.args:
                first = node.args[0]
                builder = first.func if isinstance(first, ast.Call) else None
                name = getattr(builder, "attr", None) or getattr(builder, "id", None)
                if name not in DOCUMENTS and not (path.name == "__init__.py" and ast.unparse(first) == "printable(line)"):
                    found.append(f"{path.name}:{node.lineno}: print({ast.unparse(first)[:60]})")
    assert found == []


@pytest.mark.parametrize("kind", list(CONTROLS))
def test_savi_videos_one_line_inside_lmms_eval_stays_one_line(kind, capsys):
    """``savi_video``'s refusal inside lmms-eval (:func:`savi_plugin.eval.settings.exits_as_configuration_error`)
    is printed by the same rule: a path in ``model_args`` holding a line break is escaped."""
    from savi_plugin.eval.settings import SettingError, exits_as_configuration_error

    raw, escaped = CONTROLS[kind]
    with pytest.raises(SettingError) as raised, exits_as_configuration_error():
        raise SettingError(f"savi_video: pretrained=m{raw}error: x: not found")
    assert raised.value.code == 2
    assert lines(capsys.readouterr().err) == [f"savi_video: pretrained=m{escaped}error: x: not found"]


def test_a_log_line_a_warning_or_a_message_never_continues_a_progress_bars_line(capsys):
    """A warning or log line written while a progress bar is drawn started on the bar's line (``items: 25%|...|
    WARNING ...``; left open since pass 12). The CLI's handler and printer clear the bars around each line they
    write and draw them again after it; what a terminal shows of each line is what follows its last ``\\r``."""
    import sys
    import warnings

    from tqdm import tqdm

    from savi_plugin import cli

    handler = cli.ClearOfBarsHandler(sys.stderr)
    handler.setFormatter(cli.OneLineFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("savi_plugin.tests.bars")
    log.addHandler(handler)
    log.propagate = False
    try:
        bar = tqdm(total=4, file=sys.stderr, desc="items", mininterval=0, miniters=1)
        bar.update(1)
        log.warning("a log line")
        cli.say("a message", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            with cli.one_line_warnings():
                warnings.warn("a library warning", UserWarning)
        bar.update(1)
        bar.close()
    finally:
        log.removeHandler(handler)
    shown = [line.split("\r")[-1] for line in capsys.readouterr().err.split("\n")]
    for text in ("WARNING a log line", "a message", "warning: UserWarning: a library warning"):
        assert text in shown, shown
    assert sum("items:" in line for line in shown) == 1, shown  # the bar, drawn again, ends on a line of its own


_LIBRARY_LOG_UNDER_A_BAR = """
import logging, sys
from tqdm import tqdm
import transformers.utils.logging as library
from savi_plugin import cli

handler = cli.ClearOfBarsHandler()
handler.setFormatter(cli.OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
logging.basicConfig(level=logging.INFO, handlers=[handler])
bar = tqdm(total=4, desc="items", mininterval=0, miniters=1)
bar.update(1)
logging.getLogger("savi_plugin.x").info("a savi line")
library.get_logger("transformers.modeling_utils").warning("a transformers line")
bar.update(1)
bar.close()
"""


def test_a_transformers_log_line_never_continues_a_progress_bars_line():
    """Left open since pass 15: transformers writes its records with a handler of its own, straight to standard
    error, so one could land on a bar's line. Once loaded, its records go through the command's handler."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _LIBRARY_LOG_UNDER_A_BAR], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = [line.split("\r")[-1] for line in proc.stderr.split("\n")]
    assert "WARNING transformers.modeling_utils: a transformers line" in shown, shown
    assert not any("items:" in line and "transformers line" in line for line in proc.stderr.split("\n"))


def test_a_transformers_warning_logged_while_it_configures_its_logger_does_not_hang_the_command(tmp_path):
    """Pass 19 C #29: with ``TRANSFORMERS_VERBOSITY=loud`` transformers logs a warning while it holds its logging
    lock; routing its records from inside that warning waited on the lock forever (``savi recipes show`` hung)."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "savi_plugin", "recipes", "show", "tiny_demo"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env={**os.environ, "TRANSFORMERS_VERBOSITY": "loud"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Unknown option TRANSFORMERS_VERBOSITY=loud" in proc.stderr and "model:" in proc.stdout


def test_a_long_error_line_is_cut_between_words_keeping_its_start_and_its_reason():
    """Pass 23 C #26: a merge's refusal longer than the line's 500 characters was cut mid-word on both sides of its
    `` ... `` (``has differ ... o shards``). Generated lines of words: the kept start and end are whole words of the
    line, the reason (its last word) is kept, and the line fits; a word longer than the kept start (a long path)
    is still cut, as ``untrusted.shown`` cuts a value."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from savi_plugin.cli import _one_line

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.text("abcdefghij'()/", min_size=1, max_size=14), min_size=260, max_size=400),
           st.integers(0, 7))
    def check(words, shift):
        line = " ".join(["error:", *words, "REASON"])
        shown = _one_line(line, 500 + shift)
        head, _, tail = shown.partition(" ... ")
        assert len(shown) <= 500 + shift and line.startswith(head) and line.endswith(tail)
        assert line[len(head)] == " " and line[len(line) - len(tail) - 1] == " ", (head[-20:], tail[:20])
        assert tail.endswith(" REASON")

    check()
    path = "/data/" + "x" * 600 + ".jsonl"
    shown = _one_line(f"error: {path}: refusing it")
    assert len(shown) <= 500 and shown.startswith("error: /data/xxx") and shown.endswith("x.jsonl: refusing it")
