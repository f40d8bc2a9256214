"""The ``savi_video`` model's settings: its ``--model_args`` and the ``--gen_kwargs`` of the requests, checked by
the project's one value check (:mod:`savi_plugin.config.values`) before any document is answered.

lmms-eval hands values over as its own parser made them: ``num_frames=32`` arrives as the int 32 or the string
``"32"``, ``fps=none`` as the string ``"none"``. :func:`parse_setting` reads such text as the field's type
(``none``/``null``/empty: None where the field allows it), then the field's rules apply. A bad value is a
:class:`SettingError`: one line naming the argument, ``savi_video: num_frames must be >= 1, got 0``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any

from savi_plugin.config.values import (
    AtLeast,
    Check,
    ConfigError,
    FrameCount,
    NonNegative,
    OneOf,
    Positive,
    Range,
    build,
    checked,
)
from savi_plugin.untrusted import underflow_problem
from savi_plugin.video.decode import BACKENDS as VIDEO_BACKENDS
from savi_plugin.video.decode import DEFAULT_NUM_FRAMES
from savi_plugin.video.sampling import LMMS_EVAL_RULES

_NONE_WORDS = ("", "none", "null")
_TRUE_WORDS = (True, 1, "true", "yes", "on", "1")
_FALSE_WORDS = (False, 0, "false", "no", "off", "0")


class SettingError(SystemExit):
    """A bad ``--model_args`` / ``--gen_kwargs`` value, or a task's unusable data
    (:data:`savi_plugin.eval.command.DATA_ERROR_PREFIX`). A SystemExit, so that lmms-eval (which prints a traceback
    for any Exception) stops with this one line before any document is answered: with exit status 2, a
    configuration error's (:class:`~savi_plugin.errors.ConfigurationError`), where it leaves ``savi_video``'s
    methods lmms-eval calls (:func:`exits_as_configuration_error`); raised elsewhere, Python prints it and exits 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def exits_as_configuration_error():
    """Around the ``savi_video`` methods lmms-eval calls: a :class:`SettingError` leaving the block prints its one
    line on stderr and ends the process with exit status 2 (``ConfigurationError.exit_code``), so a configuration
    error found inside lmms-eval ends as one found before it starts (``savi eval run`` maps lmms-eval's 2 to its
    own 2, :class:`savi_plugin.eval.command.EvalSettingError`). Python prints nothing for an integer exit status,
    hence the line printed here."""
    import sys

    from savi_plugin.errors import ConfigurationError
    from savi_plugin.untrusted import printable

    try:
        yield
    except SettingError as exc:
        if exc.code != ConfigurationError.exit_code:  # not yet printed by an enclosing block
            print(printable(exc.message), file=sys.stderr, flush=True)  # one line, whatever a path in it holds
            exc.code = ConfigurationError.exit_code
        raise


#: the longest answer a request may ask for: 2**20 tokens, beyond any model's context (a larger number is a typo)
MAX_NEW_TOKENS = 2**20


@dataclass(frozen=True)
class SaviVideoArgs:
    """The checked ``--model_args`` of ``savi_video`` (the others -- paths, names, device -- are passed on as given)."""

    num_frames: int = checked(DEFAULT_NUM_FRAMES, FrameCount(), help="frames sampled uniformly per video")
    fps: float | None = checked(None, Positive(), help="sample at this many frames per second instead")
    max_frames: int | None = checked(None, AtLeast(1), help="at most this many frames when sampling at fps")
    video_backend: str | None = checked(None, OneOf(*VIDEO_BACKENDS, what="video backend"),
                                        help="pyav or decord (the decord extra); None: pyav")
    batch_size: int = checked(1, AtLeast(1), help="requests per generate call (lmms-eval's --batch_size)")
    max_new_tokens: int = checked(16, Range(1, MAX_NEW_TOKENS), help="answer length when a task sets none (the "
                                                                     "--gen_kwargs cap)")
    frame_rule: str | None = checked(None, OneOf(*LMMS_EVAL_RULES, what="frame_rule"),
                                     help="lmms-eval wrapper whose frame sampler the _lmms tasks follow")
    trust_remote_code: bool | None = checked(None, help="passed to transformers; off unless asked for")

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.fps is None:  # the cap of fps sampling, nothing without it
            raise ConfigError("max_frames", "caps the frames sampled at fps and does nothing without fps: give fps "
                                            "too, or set num_frames")


@dataclass(frozen=True)
class GenerationSettings:
    """The checked generation settings of a request (``--gen_kwargs`` and the task's ``generation_kwargs``): the
    ones ``savi_video`` applies, each in a finite range. It decodes one sequence (greedy, or sampled with
    ``do_sample`` and a temperature above 0), so ``num_beams`` is applied only as 1; ``until`` (stop strings) is
    checked apart (:func:`until_problem`)."""

    max_new_tokens: int | None = checked(None, Range(1, MAX_NEW_TOKENS))
    temperature: float | None = checked(None, NonNegative())
    top_p: float | None = checked(None, Range(0, 1, open_low=True))
    do_sample: bool | None = checked(None)
    num_beams: int | None = checked(None, Check(lambda beams: beams == 1, "must be 1 (savi_video decodes one "
                                                                      "sequence: greedy, or sampled with do_sample)"))


#: every generation setting ``savi_video`` applies (:class:`GenerationSettings` and the stop strings ``until``);
#: another key (``top_k``, ``repetition_penalty`` ...) would be recorded by lmms-eval as the setting used while
#: nothing applied it, so it is refused
APPLIED_GEN_KWARGS = tuple(f.name for f in dataclasses.fields(GenerationSettings)) + ("until",)


def unapplied_sampling(given: dict, settings: GenerationSettings) -> str | None:
    """Why ``given`` (generation settings as a user wrote them, parsed into ``settings``) asks for sampling that
    ``savi_video`` would not apply, or None. It samples only with ``do_sample`` true and a temperature above 0
    (:meth:`savi_plugin.eval.model.SaviVideo._generate_chunk`), else it decodes greedily, while lmms-eval records
    the settings given as the ones used (its own LLaVA models sample whenever the temperature is above 0). So a
    ``temperature`` above 0 or a ``top_p`` below 1 without ``do_sample=true`` beside it, and ``do_sample=true`` with
    ``temperature=0``, are refused, as a key ``savi_video`` does not apply is (:data:`APPLIED_GEN_KWARGS`). Only
    settings written together can be judged: a task's ``generation_kwargs`` (lmms-eval's built-in ``mmvu_val``:
    ``temperature: 0.7, do_sample: false``) is recorded per task as it is, ``do_sample`` included."""
    sampled = settings.do_sample is True
    temperature, top_p = settings.temperature, settings.top_p
    if temperature and not sampled:
        return (f"temperature={given['temperature']} samples only with do_sample=true: without it savi_video "
                f"decodes greedily, while lmms-eval records temperature={given['temperature']} as used; add "
                f"do_sample=true, or leave temperature out")
    if top_p is not None and top_p < 1 and not sampled:
        return (f"top_p={given['top_p']} applies only when sampling (do_sample=true and a temperature above 0): "
                f"without do_sample=true savi_video decodes greedily, while lmms-eval records top_p={given['top_p']} "
                f"as used; add do_sample=true and a temperature, or leave top_p out")
    if sampled and temperature is not None and temperature == 0:
        return ("do_sample=true with temperature=0 decodes greedily, while lmms-eval records do_sample=true as "
                "used; give a temperature above 0 to sample, or leave do_sample out")
    return None


def until_problem(until: Any) -> str | None:
    """What is wrong with the stop strings ``until``, or None. As lmms-eval 0.7.3's own models read it
    (``lmms_eval/models/simple/qwen2_5_vl.py``: a text is one stop string, a list holds several, an empty one
    stops nothing, anything else is a ``ValueError``): None, a text or a list of texts. lmms-eval's
    ``--gen_kwargs`` parser reads no list, so ``until=[]`` there is the one stop string ``"[]"`` for every
    lmms-eval model; an empty list is written in a task's ``generation_kwargs``."""
    if until is None or isinstance(until, str):
        return None
    if isinstance(until, (list, tuple)) and all(isinstance(stop, str) for stop in until):
        return None
    return f"must be a stop string or a list of them, got {type(until).__name__} {until!r}"


def parse_setting(cls: type, name: str, value: Any, label: str) -> Any:
    """``value`` (a number, or text from the command line) as field ``name`` of ``cls``, before its rules.

    Raises:
        SettingError: ``savi_video: <label> must be a whole number`` (or ``a number``), naming the value.
    """
    options = typing.get_args(typing.get_type_hints(cls)[name]) or (typing.get_type_hints(cls)[name],)
    if isinstance(value, str) and value.strip().lower() in _NONE_WORDS and type(None) in options:
        return None
    if bool in options:  # bool("false") is True: words are read, anything else is refused
        word = value.strip().lower() if isinstance(value, str) else value
        if value is None or isinstance(value, bool):
            return value
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise SettingError(f"savi_video: {label} must be true or false, got {value!r}")
    kind = next((o for o in options if o in (int, float)), None)
    if kind is None or (value is None and type(None) in options):
        return value
    try:
        if isinstance(value, bool):
            raise ValueError
        if kind is int:  # written whole, as a recipe's int field must be: 4.0 and 1e0 are refused there too
            if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
                return int(value)
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():  # lmms-eval's parser made '-3' and '1e9' decimals
                _refuse_out_of_range(cls, name, int(value), label)
                raise SettingError(f"savi_video: {label} must be a whole number, got {value!r} (lmms-eval reads "
                                   f"'+4', '-3' and '1e9' as decimal numbers; write it as digits alone, e.g. "
                                   f"{name}={int(value)})")
            raise ValueError
        number = float(value) if isinstance(value, str) else value
        if isinstance(value, str) and underflow_problem(value, number):  # 1e-400 reads as 0
            raise SettingError(f"savi_video: {label}: {underflow_problem(value, number)}")
        return float(number)
    except (TypeError, ValueError, OverflowError):
        what = "a whole number" if kind is int else "a number"
        raise SettingError(f"savi_video: {label} must be {what}, got {value!r}") from None


def _refuse_out_of_range(cls: type, name: str, value: int, label: str) -> None:
    """Refuse ``value`` by field ``name``'s own rules, when they refuse it (``-3`` for a count >= 1): the range is
    what is wrong with it, whatever form lmms-eval gave it."""
    try:
        build(cls, {name: value})
    except ConfigError as exc:
        if exc.path == name:
            joint = " " if exc.message.startswith("must") else ": "
            raise SettingError(f"savi_video: {label}{joint}{exc.message}") from None


def checked_settings(cls: type, values: dict[str, Any], suffix: str = ""):
    """An instance of ``cls`` from ``values`` (keys that are not fields of ``cls`` are ignored; an absent key: the
    field's default), each parsed and checked; ``suffix`` follows the argument's name in messages
    (``" (gen_kwargs)"``).

    Raises:
        SettingError: the first bad value, one line naming it.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    parsed = {name: parse_setting(cls, name, value, name + suffix) for name, value in values.items() if name in names}
    try:
        return build(cls, parsed)
    except ConfigError as exc:  # "num_frames must be >= 1, got 0"; "video_backend: unknown video backend ..."
        joint = " " if exc.message.startswith("must") else ": "
        raise SettingError(f"savi_video: {exc.path}{suffix}{joint}{exc.message}") from None


def check_gen_kwargs(gen_kwargs: dict) -> GenerationSettings:
    """The generation settings parsed (``"None"``/``"none"``: unset; ``do_sample="false"``: False) and checked:
    a key ``savi_video`` does not apply (:data:`APPLIED_GEN_KWARGS`) is refused by name, and so is a value out of
    its range (``max_new_tokens`` < 1, negative temperature, top_p outside (0, 1], ``num_beams`` other than 1, a
    ``do_sample`` that is no yes/no, ``until`` that is no stop string or list of them)."""
    if any(not str(key).strip() for key in gen_kwargs):  # lmms-eval read `=5` as the key "" with the value 5
        raise SettingError(f"savi_video: --gen_kwargs holds an item with an empty key (an empty name before '='); "
                           f"write each item as key=value, with one of {', '.join(APPLIED_GEN_KWARGS)}")
    unknown = [key for key in gen_kwargs if key not in APPLIED_GEN_KWARGS]
    if unknown:
        raise SettingError(f"savi_video: {', '.join(map(str, unknown))} (gen_kwargs): not applied by savi_video, "
                           f"which applies only {', '.join(APPLIED_GEN_KWARGS)}; remove "
                           f"{'it' if len(unknown) == 1 else 'them'} (lmms-eval would record "
                           f"{'it' if len(unknown) == 1 else 'them'} as the setting used)")
    problem = until_problem(gen_kwargs.get("until"))
    if problem:
        raise SettingError(f"savi_video: until (gen_kwargs) {problem}")
    return checked_settings(GenerationSettings, dict(gen_kwargs), " (gen_kwargs)")
