"""The one place that builds an lmms-eval command line (``savi eval run``, ``savi eval suite`` and the recipes' eval
step use it).

lmms-eval re-parses two of its arguments: ``--model_args`` (``k=v,k=v``, quotes, JSON brackets) and
``--output_path``, which it appends to ``--hf_hub_log_args`` as ``,output_path=<path>`` and splits again on ``,``
and ``=`` (a folder ``out,output_path=/elsewhere`` would move lmms-eval's output out of it, ``out, limit=2`` would
inject a keyword), and types every value (a model folder ``1e5`` arrives as the float 100000.0, an adapter folder
``True`` as a boolean). A path lmms-eval would misread (:func:`misread`) reaches it only as a temporary link it reads
as given (:func:`safe_paths`), and by construction no caller can skip that: the builders of the command
line (:func:`savi_video_args` for every path value, :func:`lmms_eval_command` for ``--output_path``) refuse such a
path, and :func:`savi_video_command` -- the evaluation of a model (+ adapter) that the suite and the recipes' eval
step run -- links its paths before building the command. A user's own ``--model_args`` (``savi eval run``) goes
through the same links (:func:`safe_model_args`), after lmms-eval's own split (:func:`split_model_args`), which
refuses a value that split cannot carry.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from savi_plugin.config.values import ConfigError, EvalLimit
from savi_plugin.data.outputs import disk_full_errno, start_child
from savi_plugin.data.watched import check_active
from savi_plugin.errors import ConfigurationError, RunError
from savi_plugin.eval.results import ResultsFileError, read_json_object

_SUBCOMMANDS_WITHOUT_TASKS = ("models", "version", "ui", "serve", "power", "tui", "mcp")


#: characters lmms-eval re-parses in a path: ``--model_args`` (``k=v,k=v``, quotes, JSON brackets) and
#: ``--output_path``, which lmms-eval 0.7.3 appends to ``--hf_hub_log_args`` as ``,output_path=<path>`` and
#: splits again on ``,`` and ``=`` (a run folder ``a,x=1`` would inject the keyword ``x``)
PATH_SYNTAX = frozenset(",=\"'{}[]")


def retyped(text: str) -> object | None:
    """What lmms-eval makes of ``text`` as the value of a ``k=v,k=v`` string when that is not the text itself, else
    None. Both re-parsed arguments reach it as such a value (``--model_args`` and ``--output_path``, see
    :data:`PATH_SYNTAX`), and lmms-eval 0.7.3's ``simple_parse_args_string`` (``lmms_eval/utils.py``) types every
    value through ``handle_arg_string``: ``true``/``false`` in any case become booleans, a ``str.isnumeric()``
    text goes through ``int()`` (``07`` is 7; a vulgar fraction is numeric to Python but ``int()`` raises, so
    lmms-eval stops), and any text ``float()`` reads becomes a float (``1e5``, ``nan``, ``inf``, ``1_0``, ``+1``,
    Arabic-Indic digits). ``None``, ``0x1f`` and ``1e5x`` stay text. Described here rather than imported, because importing
    ``lmms_eval.utils`` loads torch and transformers (~10 s); ``tests/eval/test_command.py`` checks this against
    lmms-eval's own function."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.isnumeric():
        try:
            return int(text)
        except ValueError:
            return ValueError(f"int({text!r}) raises")
    try:
        return float(text)
    except ValueError:
        return None


def split_args_string(text: str, *, strip: bool = True) -> list[str]:
    """The ``k=v`` items of a ``k=v,k=v`` string as lmms-eval 0.7.3 splits it (``lmms_eval/utils.py``
    ``_smart_comma_split``, called by ``simple_parse_args_string``): at each ``,`` outside quotes (a quote
    preceded by a backslash does not count) and outside ``{}``/``[]``, each item stripped, empty items dropped.
    The quotes stay in the items. Described here for the reason :func:`retyped` gives; ``tests/eval/test_command.py``
    checks it against lmms-eval's own function. ``strip=False``: the same items with the white space lmms-eval
    strips kept, for saying what it strips."""
    text = text.strip() if strip else text
    items, current, depth, quote = [], [], 0, None
    for i, char in enumerate(text):
        if char in "\"'" and (i == 0 or text[i - 1] != "\\"):
            if quote is None:
                quote = char
            elif char == quote:
                quote = None
        elif quote is None:
            if char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
            elif char == "," and depth == 0:
                if "".join(current).strip():
                    items.append("".join(current).strip() if strip else "".join(current))
                current = []
                continue
        current.append(char)
    if "".join(current).strip():
        items.append("".join(current).strip() if strip else "".join(current))
    return items


def args_items(text: str, flag: str) -> list[tuple[str, str, str]]:
    """``(raw item, key, value)`` of each item of a ``k=v,k=v`` string (``--model_args``, ``--gen_kwargs``), split
    as lmms-eval splits it (:func:`split_args_string`, then each stripped item at its first ``=``): the one check
    of an item's form for every such flag.

    Raises:
        ConfigError: one line naming ``flag``, the item and the form ``key=value``: an item without ``=`` (lmms-eval
            would stop on Python's ``not enough values to unpack``; with several items, a value cut at a ``,``,
            which lmms-eval's split cannot carry in a value) or with an empty key (``=1``).
    """
    raws = split_args_string(text, strip=False)
    items = []
    for raw in raws:
        item = raw.strip()
        key, sep, value = item.partition("=")
        if not sep:
            why = (f"lmms-eval splits {flag} at every ',', so a value (a path) cannot hold one; link the path under "
                   f"a name without ','") if len(raws) > 1 else f"write each item of {flag} as key=value"
            raise ConfigError("", f"{flag} {text!r}: {item!r} is no key=value: {why}")
        if not key.strip():
            raise ConfigError("", f"{flag} {text!r}: {item!r} has an empty key (an empty name before '='); write "
                                  f"each item of {flag} as key=value")
        items.append((raw, key, value))
    return items


def split_model_args(text: str, flag: str = "--model_args") -> list[tuple[str, str]]:
    """``(key, value)`` of each item of a ``k=v,k=v`` string, split as lmms-eval splits it
    (:func:`split_args_string`, then each item at its first ``=``), values as text (lmms-eval then types them:
    :func:`retyped`).

    Raises:
        ConfigError: an item not of the form ``key=value`` (:func:`args_items`). A key given
            twice -- lmms-eval's dict keeps the last value, but its results folder is named by the first
            ``pretrained=`` (``EvaluationTracker._get_model_name`` reads the raw string), so one model's scores
            would be filed under another's name. A value with white space at its end that names an existing
            path (``pretrained=mw ``): lmms-eval strips it and would load ``mw``, another folder or none.
    """
    pairs: list[tuple[str, str]] = []
    for raw, key, value in args_items(text, flag):
        written = raw.lstrip().partition("=")[2]
        if written != value and os.path.lexists(written):
            raise ConfigError("", f"{flag}: {key}={written!r} names a path whose name ends in white space, which "
                                  f"lmms-eval strips: it would read {key}={value!r}; link the path under a name "
                                  f"without surrounding white space")
        first = next((v for k, v in pairs if k == key), None)
        if first is not None:
            raise ConfigError("", f"{flag}: {key}= is given twice ({key}={first} and {key}={value}); give each key "
                                  f"once (lmms-eval would use the last and name its results after the first)")
        pairs.append((key, value))
    return pairs


#: the ``model_args`` texts ``savi_video`` reads as "no value" (:func:`none_value`), in any case and spacing
NONE_WORDS = ("", "none", "null")


def none_value(value: object) -> object:
    """``savi_video``'s reading of one ``model_args`` value (:class:`savi_plugin.eval.model.SaviVideo`): a text in
    :data:`NONE_WORDS` (any case, spaces around) is None -- ``adapter=none`` evaluates the base model -- and any
    other value is itself. The one rule: :func:`misread_reason` gives a path ``savi_video`` would read so as a
    link."""
    if isinstance(value, str) and value.strip().lower() in NONE_WORDS:
        return None
    return value


def misread_reason(path: object) -> str | None:
    """Why lmms-eval (and ``savi_video`` after it) would not read ``path`` as the path it is, or None when it would:
    it holds one of :data:`PATH_SYNTAX`; it starts with ``-`` (argparse reads ``--output_path -x`` as a missing
    value followed by an option ``-x``); it ends in whitespace (lmms-eval strips each ``k=v``); its value is typed
    (:func:`retyped`: a model folder ``1e5`` would reach ``savi_video`` as the float 100000.0, an adapter ``True``
    as a boolean); or ``savi_video`` reads it as no value (:func:`none_value`: an adapter folder ``none`` would
    evaluate the base model, a model folder ``NULL`` none at all)."""
    text = str(path)
    if none_value(text) is None:
        return f"savi_video reads {text!r} as no value (no adapter, no model)"
    if PATH_SYNTAX & set(text):
        return f"it holds one of {''.join(sorted(PATH_SYNTAX))}, which lmms-eval splits on"
    if text.startswith("-"):
        return "it starts with -, which lmms-eval's argument parser reads as an option"
    if text != text.rstrip():
        return "it ends in whitespace, which lmms-eval strips"
    value = retyped(text)
    if value is not None:
        return f"lmms-eval reads it as {value!r}, not as a path" if not isinstance(value, Exception) else \
            f"lmms-eval cannot read it as a value ({value})"
    return None


def misread(path: object) -> bool:
    """Whether lmms-eval would not read ``path`` as the path it is (:func:`misread_reason`)."""
    return misread_reason(path) is not None


def _refuse_syntax(name: str, value: object) -> str:
    """``value`` as text, or a :class:`ConfigError` naming it when lmms-eval would split it."""
    text = str(value)
    if PATH_SYNTAX & set(text):
        raise ConfigError("", f"{name}={text!r} holds one of {''.join(sorted(PATH_SYNTAX))}, which lmms-eval "
                              f"re-parses: pass the path through savi_plugin.eval.command.safe_paths")
    return text


def _refuse_path(flag: str, value: object) -> str:
    """A path value as text, or a :class:`ConfigError` naming it when lmms-eval would misread it."""
    reason = misread_reason(value)
    if reason:
        raise ConfigError("", f"{flag}={str(value)!r}: lmms-eval re-parses it ({reason}): pass the path through "
                              f"savi_plugin.eval.command.safe_paths")
    return str(value)


def lmms_eval_command(lmms_eval_args: list[str], tasks_path: str | None = None) -> list[str]:
    """``python -m lmms_eval ARGS``, with our task folder added when ``tasks_path`` is given.

    ``--include_path tasks_path`` is added unless the arguments carry one (the ``tasks`` sub-command spells the
    flag ``--include-path``; sub-commands that take no tasks get none). Without ``tasks_path`` lmms-eval finds
    our tasks through the package's automatic registration. An ``--output_path`` lmms-eval would re-parse is
    refused (:class:`ConfigError`): give it through :func:`safe_paths`.
    """
    args = [str(a) for a in lmms_eval_args]
    output = flag_value(args, "--output_path")
    if output is not None:
        _refuse_path("--output_path", output)
    if tasks_path is not None and not any(a.split("=", 1)[0] in ("--include_path", "--include-path") for a in args):
        if args and args[0] == "tasks":
            args += ["--include-path", tasks_path]
        elif not (args and args[0] in _SUBCOMMANDS_WITHOUT_TASKS):
            args += ["--include_path", tasks_path]
    return [sys.executable, "-m", "lmms_eval", *args]


def _model_arg(name: str, value: object) -> str:
    what = f"savi_video model_args: {name}"
    return f"{name}={_refuse_path(what, value) if name in READ_PATH_ARGS else _refuse_syntax(what, value)}"


def savi_video_args(model: str | Path, tasks: list[str], output_path: str | Path, *, num_frames: int,
                    adapter: str | Path | None = None, limit: float | None = None, batch_size: int = 1,
                    max_new_tokens: int | None = None, device: str | None = None,
                    dtype: str = "float32") -> list[str]:
    """lmms-eval arguments that evaluate ``model`` (+ ``adapter``) with the ``savi_video`` model on ``tasks``.

    Every path must already be one lmms-eval reads as given (:func:`savi_video_command` makes them so);
    a path lmms-eval would misread (:func:`misread`) is refused with a :class:`ConfigError` naming it."""
    model_args = [_model_arg("pretrained", model), _model_arg("num_frames", num_frames), _model_arg("dtype", dtype)]
    if adapter:
        model_args.append(_model_arg("adapter", adapter))
    if max_new_tokens:
        model_args.append(_model_arg("max_new_tokens", max_new_tokens))
    args = ["--model", "savi_video", "--model_args", ",".join(model_args), "--tasks", ",".join(tasks),
            "--batch_size", str(batch_size), "--output_path", _refuse_path("--output_path", output_path)]
    if limit is not None:
        check_limit(limit, "limit")
        args += ["--limit", str(limit)]
    if device:
        args += ["--device", device]
    return args


# ------------------------------------------------------------------------------------------ judging a run
class EvalRunError(RunError):
    """lmms-eval ran but its results file is missing or incomplete (lmms-eval itself exits 0 on any error).

    ``problem``: the one line without the log; ``log_path``: lmms-eval's full log, named at the end of ``str()``
    (a caller that moves the log out of a folder about to be removed names the new place: :meth:`log_moved`)."""

    def __init__(self, problem: str, log_path: str | Path | None = None) -> None:
        self.problem, self.log_path = problem, (Path(log_path) if log_path is not None else None)
        super().__init__(problem + (f"; full log: {log_path}" if log_path is not None else ""))

    def log_moved(self, path: str | Path) -> EvalRunError:
        """The same error naming the log at ``path``, where it was moved."""
        return type(self)(self.problem, path)

    def log_kept(self, removed: str | Path, output: str | Path) -> EvalRunError:
        """The same error with its log moved out of ``removed``, a folder the same exit removes, to
        :func:`~savi_plugin.data.outputs.keep_failed_log` beside ``output`` -- so the line never names a file that is
        gone; unchanged when the log is elsewhere (or none was written)."""
        from savi_plugin.data.outputs import keep_failed_log

        removed = Path(removed).resolve()
        if self.log_path is None or not self.log_path.is_file() or removed not in self.log_path.resolve().parents:
            return self
        return self.log_moved(keep_failed_log(self.log_path, output))


class EvalSettingError(EvalRunError, ConfigurationError):
    """lmms-eval stopped with exit status 2: a configuration error (``savi_video``'s :class:`~savi_plugin.eval.
    settings.SettingError`, or lmms-eval's own argument parser refusing a flag), found once lmms-eval started;
    ``savi`` exits 2 for it, as for the same error found before (:class:`~savi_plugin.errors.ConfigurationError`)."""

    exit_code = 2


#: the lmms-eval flags savi reads or sets by their full name (``savi eval run``'s checks, :func:`with_flag`,
#: :func:`lmms_eval_command`); lmms-eval's argparse also takes any unique prefix of a long option, which would
#: slip past those checks, so :func:`check_full_flags` refuses one
INSPECTED_FLAGS = ("--model", "--model_args", "--tasks", "--output_path", "--device", "--include_path", "--limit",
                   "--gen_kwargs", "--use_cache", "--config")


def check_full_flags(args: list[str]) -> None:
    """Refuse an abbreviation (``--output``, ``--model_arg=...``) of a flag in :data:`INSPECTED_FLAGS`.

    Raises:
        ConfigError: naming the abbreviation and the flag in full (exit status 2).
    """
    for arg in args:
        if not arg.startswith("--") or arg == "--":
            continue
        name = arg.split("=", 1)[0]
        if name in INSPECTED_FLAGS:
            continue
        full = [flag for flag in INSPECTED_FLAGS if flag.startswith(name)]
        if full:
            raise ConfigError("", f"{name}: write lmms-eval's flag in full ({' or '.join(full)}); savi checks it by "
                                  f"its full name")


def check_limit(value: int | float | str, name: str = "--limit") -> None:
    """An eval limit by its one rule (:class:`~savi_plugin.config.values.EvalLimit`); the text of a flag is read
    as lmms-eval reads it (a number), a whole number written without a point as an int (``1`` is one item, ``1.0``
    ambiguous). lmms-eval's own ``-1`` ("every item") is refused as ``0`` is: no limit is written by giving none.

    Raises:
        ConfigError: at ``name`` (exit status 2), before lmms-eval starts.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(name, f"must be a number, got {value!r}") from None
    problem = EvalLimit().problem(value)
    if problem:
        raise ConfigError(name, problem)


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of ``flag`` in an lmms-eval argument list (``--flag V`` or ``--flag=V``; the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


#: ``--model_args`` keys of ``savi_video`` that name something the evaluation reads
READ_PATH_ARGS = ("pretrained", "adapter")


def ambiguous_path_problem(key: str, value: object) -> str | None:
    """Why a :data:`READ_PATH_ARGS` value is ambiguous, or None: read as no value (:func:`none_value`, any case:
    ``adapter=NONE`` means no adapter) that also names an existing path in the working folder, which the user may
    have meant. Refused rather than guessed; the path is named ``./NONE``."""
    if key not in READ_PATH_ARGS or not isinstance(value, str) or not value.strip():
        return None
    if none_value(value) is not None or not os.path.lexists(value):
        return None
    return (f"{key}={value!r} is ambiguous: {value!r} means no {key} to savi_video, and it also names "
            f"{'a folder' if os.path.isdir(value) else 'a file'} here; write {key}=./{value} for that path, or "
            f"leave {key}= out for none")


def empty_path_problem(key: str, value: object) -> str | None:
    """Why a :data:`READ_PATH_ARGS` value is refused for being empty, or None: ``adapter=`` is what
    ``adapter=$ADAPTER`` gives when the variable is unset, and read as "no adapter" it evaluated the base model
    under the adapter's label with no word. ``none`` says "no adapter" on purpose; leaving the key out too."""
    if key not in READ_PATH_ARGS or not isinstance(value, str) or value.strip():
        return None
    return (f"{key}= is empty (what {key}=$VAR gives when the variable is unset): name the "
            f"{'adapter folder' if key == 'adapter' else 'model folder or hub id'}"
            + (", or leave adapter= out (or write adapter=none) to evaluate the base model" if key == "adapter" else ""))


def read_paths(model_args: str | None, data_root: str | None, flag: str = "--model_args") -> dict[str, str]:
    """What an lmms-eval evaluation reads on this machine, by the name the user gave it: the ``pretrained=`` and
    ``adapter=`` of ``--model_args`` (split as lmms-eval splits them: :func:`split_model_args`) and the data root;
    only those that exist (a hub id names nothing here)."""
    found = {}
    for key, value in split_model_args(model_args or ""):
        if key in READ_PATH_ARGS and value:
            found[f"{key}= of {flag}"] = value
    if data_root:
        found["the data root (SAVI_DATA_ROOT)"] = data_root
    return {name: path for name, path in found.items() if os.path.exists(path)}


def check_devices(lmms_args: list[str], names: dict[str, str] | None = None) -> None:
    """Refuse, before lmms-eval starts, a ``savi_video`` device this machine cannot run on: lmms-eval's
    ``--device`` and the ``device=`` of ``--model_args`` (split as lmms-eval splits them), through
    :func:`savi_plugin.device.resolve_device`. ``names``: how a flag's value was given, when not as the flag
    (a key of lmms-eval's ``--config`` file).

    Raises:
        ConfigError: naming the flag or the model_args key (exit status 2).
    """
    from savi_plugin.device import resolve_device

    if flag_value(lmms_args, "--model") != "savi_video":
        return
    names = names or {}
    device = flag_value(lmms_args, "--device")
    if device is not None:
        resolve_device(device, names.get("--device", "--device"))
    flag = names.get("--model_args", "--model_args")
    for key, value in split_model_args(flag_value(lmms_args, "--model_args") or "", flag):
        if key == "device" and value:
            resolve_device(value, f"{flag} device")


def with_flag(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with every ``flag`` removed and ``flag value`` appended."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == flag:
            skip = True
            continue
        if arg.startswith(flag + "="):
            continue
        out.append(arg)
    return out + [flag, value]


#: the temporary links :func:`safe_paths` holds now: the link -> the path it stands for (as given, made absolute);
#: :func:`name_linked_paths` writes the latter into lmms-eval's kept results in place of the former
_LIVE_LINKS: dict[str, str] = {}


@contextmanager
def safe_paths(*paths: str | Path | None):
    """Paths lmms-eval cannot misread: a path it would misread (:func:`misread`) is replaced, for the duration of
    the call, by a symbolic link to it in a fresh temporary folder (an output folder is created first, so
    lmms-eval's output lands in it through the link). Such a path that names nothing is refused
    (:class:`ConfigError`): as given, lmms-eval would read it as other arguments. While the block runs, the links
    are known to :func:`name_linked_paths`, which names the real paths in lmms-eval's results instead."""
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="savi-lmms-eval-") as links:
        try:
            yield [_linked(path, n, Path(links), made) for n, path in enumerate(paths)]
        finally:
            for link in made:
                _LIVE_LINKS.pop(link, None)


def _linked(path: str | Path | None, n: int, links: Path, made: list[str]) -> str | Path | None:
    """``path`` as :func:`safe_paths` gives it to lmms-eval: as given, or a link ``links/n/...`` to it (recorded in
    :data:`_LIVE_LINKS` and ``made``)."""
    reason = misread_reason(path) if path is not None else None
    if not reason:
        return path
    if not os.path.exists(path):
        raise ConfigError("", f"{path}: no such file or folder (and lmms-eval could not be given this "
                              f"name as it is: {reason})")
    target = Path(path).resolve()
    # named as the path's last two parts, which lmms-eval names its results folder by
    # (EvaluationTracker's model_name_sanitized): the same folder as for the path itself
    link = links / str(n) / target.parent.name / target.name
    if misread(link):
        link = links / f"path{n}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=target.is_dir())
    if misread(link):
        raise ConfigError("", f"{path}: lmms-eval cannot be given this path ({reason}), nor the "
                              f"temporary folder {links} ({misread_reason(link)})")
    _LIVE_LINKS[str(link)] = os.path.normpath(os.path.abspath(Path(path).expanduser()))
    made.append(str(link))
    return link


def name_linked_paths(output_path: str | Path) -> list[Path]:
    """lmms-eval's ``*_results.json`` under ``output_path`` naming what was evaluated, not the temporary links of
    :func:`safe_paths` it was given (removed when the block ends): lmms-eval stores its ``--model_args`` as given
    (``model_name``, ``config.model_args``: ``pretrained=/tmp/savi-lmms-eval-.../model``). Every text of the file
    holding a live link has it replaced by the path it stands for, stored by the one rule for a path in a file
    (:func:`~savi_plugin.data.paths.path_for_file`: relative inside a run folder, else absolute); the file is
    rewritten atomically through the output layer. A file that is no JSON object (cut short by a full disk) is
    left for :func:`results_problem` to judge. Returns the files rewritten."""
    import json

    from savi_plugin.data.outputs import write_json
    from savi_plugin.data.paths import path_for_file

    links = sorted(_LIVE_LINKS.items(), key=lambda item: -len(item[0]))  # a link inside another's folder: longest
    if not links or not Path(output_path).is_dir():
        return []

    def named(value, results: Path):
        if isinstance(value, str):
            for link, real in links:
                if link in value:
                    value = value.replace(link, path_for_file(real, results))
            return value
        if isinstance(value, dict):
            return {named(k, results): named(v, results) for k, v in value.items()}
        if isinstance(value, list):
            return [named(v, results) for v in value]
        return value

    rewritten = []
    for results in sorted(Path(output_path).rglob("*_results.json")):
        try:
            text = results.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not any(link in text for link, _ in links):
            continue
        write_json(results, named(data, results), indent=2)
        rewritten.append(results)
    return rewritten


#: characters lmms-eval's ``--model_args`` split reads as structure (:func:`split_args_string`): a path value
#: holding one is cut or keeps quotes lmms-eval passes on; ``=`` after the key is carried as text
SPLIT_SYNTAX = PATH_SYNTAX - {"="}


def check_model_args(model: str | None, model_args: str | None, flag: str = "--model_args") -> list[tuple[str, str]]:
    """The items of a user's ``--model_args`` (:func:`split_model_args`), checked for ``--model savi_video``: its
    :data:`READ_PATH_ARGS` values must be paths lmms-eval can be given, as written or as a link
    (:func:`safe_model_args`).

    Raises:
        ConfigError: a value that lmms-eval's split cannot carry (an item cut at a ``,``; a path value holding one
            of :data:`SPLIT_SYNTAX`), an empty or ambiguous path value (:func:`empty_path_problem`,
            :func:`ambiguous_path_problem`: ``adapter=NONE`` beside a folder ``NONE``), or a path value lmms-eval
            would type (``1e5``) that names nothing (exit 2).
    """
    pairs = split_model_args(model_args or "", flag)
    if model != "savi_video":
        return pairs
    for key, value in pairs:
        if key not in READ_PATH_ARGS:
            continue
        problem = empty_path_problem(key, value) or ambiguous_path_problem(key, value)
        if problem:
            raise ConfigError("", f"{flag} {problem}")
        if SPLIT_SYNTAX & set(value):
            raise ConfigError("", f"{flag} {key}={value}: lmms-eval's --model_args split cannot carry this "
                                  f"path (it splits at ',' outside quotes and brackets, and passes quotes on as part "
                                  f"of the value); link it under a name without {' '.join(sorted(SPLIT_SYNTAX))}")
        typed = retyped(value) if value else None
        if typed is not None and not os.path.exists(value):
            raise ConfigError("", f"{flag} {key}={value}: no such file or folder (and lmms-eval would read "
                                  f"this value as {typed!r}, not as a path)")
    _check_setting_values(pairs, flag)
    return pairs


def _check_setting_values(pairs: list[tuple[str, str]], flag: str) -> None:
    """``savi_video``'s own rules for the values of its settings (:class:`~savi_plugin.eval.settings.SaviVideoArgs`:
    ``num_frames``, ``fps``, ``max_frames``, ``batch_size``, ...), each as lmms-eval would type it, asked before
    lmms-eval starts: a bad value in the second run of a ``--config`` file stopped it after the first had run.

    Raises:
        ConfigError: ``savi_video``'s one line, naming ``flag``.
    """
    import dataclasses

    from savi_plugin.eval.settings import SaviVideoArgs, SettingError, checked_settings

    fields = {f.name for f in dataclasses.fields(SaviVideoArgs)}
    values = {key: value if (typed := retyped(value)) is None else typed for key, value in pairs if key in fields}
    try:
        checked_settings(SaviVideoArgs, values)
    except SettingError as exc:
        raise ConfigError("", f"{flag} {exc.message.removeprefix('savi_video: ')}") from None


@contextmanager
def safe_model_args(model: str | None, model_args: str | None):
    """``--model_args`` of a user's lmms-eval run whose path values lmms-eval reads as given, valid for the ``with``
    block: for ``--model savi_video``, the :data:`READ_PATH_ARGS` values that lmms-eval would type (:func:`retyped`;
    the split has stripped each item, and ``=`` after the key is carried as text) go through :func:`safe_paths` --
    a ``pretrained=1e5`` becomes a temporary link that lmms-eval does not retype -- and the other items stay as
    written. Other models' arguments, and None, are returned as given.

    Raises:
        ConfigError: as :func:`check_model_args`.
    """
    pairs = check_model_args(model, model_args)
    if model != "savi_video" or model_args is None:
        yield model_args
        return
    paths = [n for n, (key, value) in enumerate(pairs) if key in READ_PATH_ARGS and value and retyped(value) is not None]
    with safe_paths(*(pairs[n][1] for n in paths)) as linked:
        for n, path in zip(paths, linked):
            pairs[n] = (pairs[n][0], str(path))
        yield ",".join(f"{key}={value}" for key, value in pairs)


@contextmanager
def savi_video_command(model: str | Path, tasks: list[str], output_path: str | Path, *,
                       adapter: str | Path | None = None, extra_args: list[str] = (), tasks_path: str | None = None,
                       **settings):
    """The lmms-eval command that evaluates ``model`` (+ ``adapter``) with ``savi_video`` on ``tasks`` into
    ``output_path`` (created), valid for the ``with`` block: every path lmms-eval would re-parse is a temporary
    link (:func:`safe_paths`). ``settings``: :func:`savi_video_args`' keywords; ``extra_args`` follow them.

    lmms-eval reads the model, the adapter and the benchmark data in its own process, so the files the job's
    watches hold as their identities read them (:func:`savi_plugin.data.watched.check_active`: the suite's model,
    adapters and data root, ``savi align``'s eval data root) are checked before the block and after it ends: an
    evaluation of files changed since is not the job's (a base model's run and an adapter's, paired item by item,
    on two versions of the data).

    Raises:
        InputChangedError: a watched file changed before or during the run (one line naming it).
    """
    check_active()
    Path(output_path).mkdir(parents=True, exist_ok=True)
    with safe_paths(model, adapter, output_path) as (model_arg, adapter_arg, output_arg):
        yield lmms_eval_command(savi_video_args(model_arg, tasks, output_arg, adapter=adapter_arg, **settings)
                                + list(extra_args), tasks_path)
        check_active()  # what lmms-eval read is still what the identities say, or its results are not counted
        name_linked_paths(output_path)  # the kept results name the model, not a link removed at the block's end


def _cut_short(path: Path) -> bool:
    """Whether ``path`` is empty or its JSON stops before its end (a write that failed part way)."""
    import json

    try:
        text = path.read_bytes().decode("utf-8", "replace")
        json.loads(text)
    except json.JSONDecodeError as exc:
        # the parser stopped at the end of the text, or inside a string that the end cut
        return not text.strip() or exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
    except (OSError, ValueError):
        return False
    return False


def disk_full_problem(results: Path, disk_sign: int | None) -> str | None:
    """The one line for a results file lmms-eval could not write in full, or None.

    lmms-eval 0.7.3 writes ``*_results.json`` with ``path.open("w").write(text)`` and never closes the file itself:
    when the disk, a quota or the file size limit is full, the failed flush at garbage collection is silently
    ignored by Python and an empty (or cut short) file stays. Such a file, or lmms-eval's output showing a full disk
    (``disk_sign``: :func:`~savi_plugin.data.outputs.disk_full_errno` of a line), is reported as the full disk
    (:func:`~savi_plugin.data.outputs.disk_full_message`, naming the file), and the file, written by this run, is
    removed."""
    import errno
    import resource
    import shutil

    from savi_plugin.data.outputs import disk_full_message

    if disk_sign is None and not _cut_short(results):
        return None
    code, free = disk_sign, ""
    try:
        room = shutil.disk_usage(results.parent).free
        free = f", {room // 2**20} MiB free there"
        if code is None and room < 2**20:
            code = errno.ENOSPC
    except OSError:
        pass
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]  # lmms-eval's, when it inherited ours
    with contextlib.suppress(OSError):
        if code is None and limit != resource.RLIM_INFINITY and results.stat().st_size >= limit:
            code = errno.EFBIG
        results.unlink()
    return disk_full_message(code, results, f"lmms-eval wrote it (removed{free})")


def results_problem(output_path: str | Path, tasks: list[str], since: float = 0.0,
                    disk_sign: int | None = None) -> str | None:
    """Why the newest ``*_results.json`` under ``output_path`` written after ``since`` does not show a finished run
    of every task in ``tasks``, or None when it does. ``disk_sign``: the errno of a full disk lmms-eval's output
    showed (:func:`~savi_plugin.data.outputs.disk_full_errno`), for :func:`disk_full_problem`."""
    files = [p for p in Path(output_path).rglob("*_results.json") if p.stat().st_mtime >= since - 1]
    if not files:
        if disk_sign is not None:
            from savi_plugin.data.outputs import disk_full_message

            return disk_full_message(disk_sign, output_path, "lmms-eval wrote its results there")
        from savi_plugin.data.outputs import folder_lock_file

        blocking = next((p for p in sorted(Path(output_path).iterdir())  # savi's lock on the folder blocks nothing
                         if not p.is_dir() and not folder_lock_file(p)), None) if Path(output_path).is_dir() else None
        if blocking is not None:  # lmms-eval makes <output_path>/<model name>/ and logs a FileExistsError as INFO
            return (f"lmms-eval wrote no results file ({blocking} is a file where lmms-eval makes its folders, "
                    f"<output_path>/<model name>/: move it, or give another --output_path)")
        return "lmms-eval wrote no results file"
    newest = max(files, key=lambda p: p.stat().st_mtime)
    try:
        data = read_json_object(newest)
    except ResultsFileError as exc:
        return disk_full_problem(newest, disk_sign) or str(exc)
    found = {**(data.get("results") or {}), **(data.get("groups") or {})}
    missing = [t for t in tasks if t not in found]
    if missing:
        return f"{newest}: no results for task(s) {', '.join(missing)}"
    samples = data.get("n-samples") or {}
    empty = [t for t in tasks if isinstance(samples.get(t), dict) and samples[t].get("effective") == 0]
    if empty:
        return f"{newest}: task(s) {', '.join(empty)} evaluated no document"
    return _samples_problem(output_path, since, disk_sign)


def _samples_problem(output_path: str | Path, since: float, disk_sign: int | None) -> str | None:
    """A logged-samples file of this run cut short (lmms-eval logs the ``OSError`` of a full disk or a file size
    limit while writing it and exits 0 with its results file complete), or a full disk lmms-eval's output showed:
    named as the full disk, the cut file removed (it would read as a finished run's samples); None otherwise."""
    from savi_plugin.data.outputs import disk_full_message

    cut = []
    for path in sorted(Path(output_path).rglob("*_samples_*.jsonl")):
        if path.stat().st_mtime < since - 1 or path.stat().st_size == 0:
            continue
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                cut.append(path)
    for path in cut:
        path.unlink()
    if cut:
        more = f" (and {len(cut) - 1} more, removed)" if len(cut) > 1 else " (removed)"
        return disk_full_message(disk_sign, f"{cut[0]}{more}", "lmms-eval wrote its logged samples")
    if disk_sign is not None:
        return disk_full_message(disk_sign, output_path, "lmms-eval wrote its output there")
    return None


#: how every :class:`~savi_plugin.eval.settings.SettingError` line starts, the one line ``savi_video`` prints
#: before it ends lmms-eval with exit status 2 (its log lines go through lmms-eval's logger, time-stamped)
SETTING_ERROR_PREFIX = "savi_video: "
#: how the line of a task's unusable data starts, printed inside lmms-eval before its exit status 2
#: (:meth:`savi_plugin.eval.task.SaviVideoTask.download`), followed by the data error's ``file:record:field: message``
DATA_ERROR_PREFIX = "savi task data: "


class TracebackFilter:
    """Passes lmms-eval's output line by line but folds each traceback into its last line, kept as
    :attr:`last_error` (lmms-eval prints a traceback and carries on with exit status 0); ``savi_video``'s
    configuration error (:data:`SETTING_ERROR_PREFIX`) and a task's unusable data
    (:data:`DATA_ERROR_PREFIX`) are kept as the last error too."""

    _CONTINUATION = ("Traceback (most recent call last):", "The above exception was the direct cause",
                     "During handling of the above exception")

    def __init__(self, write):
        self.write, self.in_traceback, self.last_error = write, False, None
        self._after = False  # just after a traceback: blank lines belong to it (chained exceptions)

    def __call__(self, line: str) -> None:
        text = line.rstrip("\n")
        if text.startswith(self._CONTINUATION):
            self.in_traceback, self._after = True, False
            return
        if self.in_traceback:
            if not text.strip() or text.startswith((" ", "\t")):
                return
            self.in_traceback, self._after = False, True
            self.last_error = text.strip()
            return
        if self._after and not text.strip():
            return
        self._after = False
        if "Error during evaluation:" in text:
            self.last_error = self.last_error or text.split("Error during evaluation:", 1)[1].strip()
            return
        if text.startswith((SETTING_ERROR_PREFIX, DATA_ERROR_PREFIX)):  # the one line before exit status 2
            self.last_error = text.strip()
        self.write(line)


def last_error(log_path: str | Path) -> str | None:
    """The last error lmms-eval printed in the log ``log_path`` (a traceback's last line), or None."""
    filt = TracebackFilter(lambda _line: None)
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            for line in log:
                filt(line)
    except OSError:
        return None
    return filt.last_error


def log_disk_sign(log_path: str | Path) -> int | None:
    """The errno of the first full disk, quota or file size limit lmms-eval's log ``log_path`` shows, or None."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            return next((code for code in map(disk_full_errno, log) if code is not None), None)
    except OSError:
        return None


#: the exit status of a configuration error, in lmms-eval's process as in ``savi``'s
#: (:class:`~savi_plugin.errors.ConfigurationError`; :class:`~savi_plugin.eval.settings.SettingError`)
CONFIGURATION_EXIT = ConfigurationError.exit_code


def run_judged(command: list[str], *, env: dict, output_path: str | Path, tasks: list[str],
               log_path: str | Path | None = None, verbose: bool = False) -> Path:
    """Run an lmms-eval command and judge it by its results file, not its exit status (0 on any error).

    Output goes to ``log_path`` when given, else to stderr with tracebacks folded (:class:`TracebackFilter`;
    in full with ``verbose``).

    Raises:
        EvalRunError: one line: what is missing from the results and the last error lmms-eval printed.
    """
    import subprocess
    import time

    from savi_plugin.eval.benchmarks import SAID_ENV

    if SAID_ENV in os.environ:  # the benchmark entries this process left out and said: lmms-eval does not repeat them
        env = {**env, SAID_ENV: os.environ[SAID_ENV]}
    start = time.time()
    shown = not (verbose or log_path)  # the filtered output goes to stderr; else nowhere (only tracked)
    filt = TracebackFilter(sys.stderr.write if shown else (lambda _line: None))
    disk_sign = None
    with start_child(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                     errors="replace") as proc, stopped_with_us(proc), \
            (open(log_path, "w", encoding="utf-8") if log_path else _NullFile()) as log:
        for line in proc.stdout:
            log.write(line)
            if verbose and not log_path:
                sys.stderr.write(line)
            filt(line)
            disk_sign = disk_sign or disk_full_errno(line)
        code = proc.wait()
    problem = results_problem(output_path, tasks, start, disk_sign)
    if problem is None and code == 0:
        return Path(output_path)
    hint = "" if log_path or verbose else "; re-run with -v for lmms-eval's traceback"
    cause = f"; lmms-eval's error: {filt.last_error}" if filt.last_error else ""
    status = f" (exit status {code})" if code != 0 else ""
    raise run_failure(code, f"evaluation did not finish{status}: {problem or 'lmms-eval failed'}{cause}{hint}",
                      log_path)


@contextlib.contextmanager
def stopped_with_us(proc, grace: float = 10.0):
    """Stop the child ``proc`` (lmms-eval) when the block ends with an error or a stop (Ctrl-C, SIGTERM): asked
    with SIGTERM, killed after ``grace`` seconds. Popen alone waits a quarter of a second and leaves it running,
    still writing into the output its parent already reported on."""
    import subprocess

    try:
        yield proc
    except BaseException:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    proc.kill()
                proc.wait()
        raise


def run_failure(code: int, problem: str, log_path: str | Path | None = None, *, retry_hint: str = "") -> EvalRunError:
    """The error of an lmms-eval run that did not finish, by its exit status: the one place every caller
    (``savi eval run``, ``savi eval suite``, ``savi align``'s eval step) reads it. Exit status 2 is a configuration
    error (``savi_video``'s :class:`~savi_plugin.eval.settings.SettingError`, lmms-eval's argument parser):
    :class:`EvalSettingError`, so ``savi`` exits 2 as for the same error found before lmms-eval starts; any other
    status is :class:`EvalRunError` (exit 1), its message followed by ``retry_hint`` (a re-run may finish it)."""
    if code == CONFIGURATION_EXIT:
        return EvalSettingError(problem, log_path)
    return EvalRunError(problem + retry_hint, log_path)


class _NullFile:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, _text: str) -> None:
        pass
