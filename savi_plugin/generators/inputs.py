"""Generator inputs: a folder of videos, a JSONL manifest of videos, or a video-QA JSONL with answers.

One :class:`InputItem` per video (VideoSAVi) or per question (RRPO). Manifest lines are JSON objects:

    {"video": "clips/a.mp4"}                                            # video only (VideoSAVi)
    {"id": "q7", "video": "a.mp4", "question": "What opens?", "answer": "the door"}          # open QA
    {"video": "a.mp4", "question": "...", "options": ["up", "down"], "answer_index": 1}    # MCQ

``options`` may also be called ``candidates`` (MVBench) and ``video`` may be ``media_path`` (RRPO's
release); an MCQ answer may be given as ``answer`` (option text or letter), ``answer_index`` or both
(they must agree). The ``samples.jsonl`` that :func:`savi_plugin.video.synthetic.make_synthetic_dataset`
writes is such a manifest. Relative video paths are resolved against the manifest's folder, or against the
data root when one is given -- then no path may leave it (``..``, absolute paths, symlinks pointing out;
:mod:`savi_plugin.data.paths`). A bad line raises :class:`~savi_plugin.data.DataError` naming
``file:line:field`` before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from savi_plugin.data.choices import (
    LETTERS,
    duplicate_options,
    duplicate_options_message,
)
from savi_plugin.data.files import file_problem
from savi_plugin.data.paths import file_folder, resolve_video_path
from savi_plugin.data.readers import VIDEO_SUFFIXES, iter_json_objects, no_record
from savi_plugin.data.record import DataError, check_free_form, json_kind
from savi_plugin.generators.text import normalize_answer
from savi_plugin.untrusted import equality_key, length_problem, mixed_script_word, shown_path, text_problem

VIDEO_EXTENSIONS = VIDEO_SUFFIXES


@dataclass(frozen=True)
class InputItem:
    """One unit of generation work.

    Attributes:
        id: unique, stable id (record ids are derived from it, so resume and merge depend on it).
        video: path of the video file.
        index: position in the input (records are ordered by it).
        question: the question (RRPO; optional for VideoSAVi).
        answer: the ground-truth answer text (for MCQ: the correct option's text).
        options: MCQ options, or None for open-ended questions.
        answer_index: index of the correct option (MCQ).
        origin: ``file:line`` the item came from, for messages.
        extra: other fields of the manifest line (e.g. ``task``), kept in the record's meta.
        id_from: where the input gave no id, how :attr:`id` was derived, as the words after the item's place
            in a message (``has no 'id', so savi names it after its video file v1/clip.mp4``); empty for an id the
            input gave.
    """

    id: str
    video: str
    index: int
    question: str | None = None
    answer: str | None = None
    options: tuple[str, ...] | None = None
    answer_index: int | None = None
    origin: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    id_from: str = field(default="", compare=False)

    def where(self) -> tuple[str, int | None]:
        """``(file, line)`` of :attr:`origin` (line None for an item of a folder of videos)."""
        file, _, line = self.origin.rpartition(":")
        return (file, int(line)) if file and line.isdigit() else (self.origin, None)

    def error(self, field: str, message: str) -> DataError:
        """A :class:`DataError` for this item's ``field``, at its ``file:line``."""
        return DataError(*self.where(), field, message)

    @property
    def is_mcq(self) -> bool:
        return bool(self.options)


def _items_from_folder(folder: Path) -> list[InputItem]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not files:
        raise DataError(str(folder), None, None, f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in this folder")
    items = []
    for i, path in enumerate(files):
        rel = path.relative_to(folder).with_suffix("")
        # the id and the video path pass the rule a manifest's do (each is copied into every pair made from it)
        problem = text_problem(rel.as_posix()) or text_problem(str(path))
        if problem:
            raise DataError(str(path), None, "id", f"the file's name is the item's id and video path, and it "
                                                   f"{problem}; rename the file")
        items.append(InputItem(id=rel.as_posix(), video=str(path), index=i, origin=str(path),
                               id_from=f"is a video file, named by its path without its extension "
                                       f"({shown_path(rel)})"))
    return items


def _str_field(obj: dict, key: str, file: str, line: int, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise DataError(file, line, key, "missing required field")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(file, line, key, f"expected a string, got {type(value).__name__}")
    value = str(value)
    too_long = length_problem(value)
    if too_long:
        raise DataError(file, line, key, too_long)
    if not equality_key(value):
        raise DataError(file, line, key, "must not be empty (or only invisible characters)")
    return value


def _text_field(obj: dict, key: str, file: str, line: int, *, required: bool = False) -> str | None:
    """A text field (id, video, question, answer): :func:`_str_field`, refused when it holds control markup or a
    hidden control character (:func:`savi_plugin.untrusted.text_problem`)."""
    value = _str_field(obj, key, file, line, required=required)
    problem = text_problem(value) if value is not None else None
    if problem:
        raise DataError(file, line, key, problem)
    return value


def _item_from_object(obj: Any, file: str, line: int, index: int, root: Path, confine: bool = False) -> InputItem:
    if not isinstance(obj, dict):
        raise DataError(file, line, None, f"expected a JSON object, got {json_kind(obj)}")
    video_key = "video" if "video" in obj else "media_path" if "media_path" in obj else "video"
    # every text of the item, its id and video path included, passes the pair's rule: each is copied into the
    # pairs (and the run report), whose reader would refuse it after the model had run
    video = _text_field(obj, video_key, file, line, required=True)
    path = resolve_video_path(video, root, confine=confine, file=file, line=line, field=video_key)
    item_id = _text_field(obj, "id", file, line) or _text_field(obj, "sample_id", file, line)
    id_from = "" if item_id else f"has no 'id', so savi names it after its video file {shown_path(video)}"
    item_id = item_id or Path(video).stem
    question = _text_field(obj, "question", file, line)
    answer = _text_field(obj, "answer", file, line)
    options_key = "options" if "options" in obj else "candidates"
    options = obj.get(options_key)
    answer_index = obj.get("answer_index")
    if options is not None:
        if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, (str, int, float)) and
                                                                        not isinstance(o, bool) for o in options):
            raise DataError(file, line, options_key, "expected a list of at least 2 option strings")
        options = tuple(str(o) for o in options)
        for at, option in enumerate(options):
            problem = text_problem(option, one_line=True) or (None if equality_key(option) else "must not be empty")
            if problem:
                raise DataError(file, line, f"{options_key}[{at}]", problem)
        if len(options) > len(LETTERS):
            raise DataError(file, line, options_key, f"at most {len(LETTERS)} options are supported")
        twins = duplicate_options(options)
        if twins:
            raise DataError(file, line, options_key, duplicate_options_message(options, twins))
        for at, option in enumerate(options):  # an option no answer can spell back (TR39 mixed-script)
            problem = mixed_script_word(option, "")
            if problem:
                raise DataError(file, line, f"{options_key}[{at}]", problem)
        if answer_index is not None:
            if isinstance(answer_index, bool) or not isinstance(answer_index, int) or not 0 <= answer_index < len(options):
                raise DataError(file, line, "answer_index", f"expected an integer in [0, {len(options) - 1}]")
        if answer is not None:
            norm = normalize_answer(answer)
            by_text = [i for i, o in enumerate(options) if normalize_answer(o) == norm]
            letter = answer.strip().strip("().").upper()
            if len(by_text) == 1:
                found = by_text[0]
            elif len(letter) == 1 and letter in LETTERS[:len(options)]:
                found = LETTERS.index(letter)
            else:
                raise DataError(file, line, "answer", f"{answer!r} is neither one of the options nor an option letter")
            if answer_index is not None and answer_index != found:
                raise DataError(file, line, "answer_index", f"{answer_index} disagrees with answer {answer!r}")
            answer_index = found
        if answer_index is not None:
            answer = options[answer_index]
    elif answer_index is not None:
        raise DataError(file, line, "answer_index", f"given without {options_key!r}")
    if options is not None and question is not None:  # shown as the one "Question: ..." line above the options
        problem = text_problem(question, one_line=True)
        if problem:
            raise DataError(file, line, "question", f"{problem}; in a multiple-choice record the option lines "
                                                    f"come from {options_key!r} only")
    known = {"id", "sample_id", video_key, "question", "answer", options_key, "answer_index"}
    extra = {k: v for k, v in obj.items() if k not in known}
    check_free_form(extra, file, line, "")  # copied into each pair's meta, whose rule it must pass
    return InputItem(id=item_id, video=str(path), index=index, question=question, answer=answer, options=options,
                     answer_index=answer_index, origin=f"{file}:{line}", extra=extra, id_from=id_from)


def load_inputs(source: str | Path, data_root: str | Path | None = None) -> list[InputItem]:
    """Read the generation inputs from a folder of videos or a JSONL/JSON manifest.

    Args:
        source: a directory (every video file under it, sorted by path; id = path without extension),
            or a ``.jsonl`` / ``.json`` manifest (see the module docstring).
        data_root: the folder a manifest's relative video paths start from; every path must stay inside it.
            Default: the manifest's folder, with no confinement.

    Raises:
        DataError: the source is missing or empty, a line is malformed, two items share an id, or a video
            path leaves the data root.
    """
    source = Path(source)
    base = Path(data_root) if data_root is not None else file_folder(source)
    if source.is_dir():
        items = _items_from_folder(source)
    elif source.is_file():
        items = [_item_from_object(obj, str(source), line, i, base, confine=data_root is not None)
                 for i, (line, obj) in enumerate(iter_json_objects(source))]
        if not items:  # refused as every reader command refuses a file with no record
            raise no_record(source)
    else:
        problem = file_problem(source, "folder of videos or a JSONL manifest")
        raise DataError(str(source), None, None, "input not found (expected a folder of videos or a JSONL manifest)"
                        if problem == "file not found" else problem)
    from savi_plugin.untrusted import equality_key

    seen: dict[str, InputItem] = {}
    for item in items:
        key = equality_key(item.id)  # ids that read the same are one id (a zero-width space, a look-alike)
        if key in seen:
            first = seen[key]
            raise item.error("id", f"duplicate id {item.id!r} (first at {first.origin}){_derived(item, first)}"
                             if first.id == item.id else f"id {item.id!r} reads the same as id {first.id!r} (first "
                             f"at {first.origin}): they differ only by invisible or look-alike characters"
                             f"{_derived(item, first)}")
        seen[key] = item
    return items


def _derived(item: InputItem, first: InputItem) -> str:
    """The end of a refusal of ``item``'s id, which ``first`` holds already: which of the two records had its id
    derived (the record refused is "this record", the other by its place), from what, and what to do."""
    said = [f"{who} {one.id_from}" for who, one in (("this record", item), (first.origin, first)) if one.id_from]
    if not said:
        return "; ids must be unique"
    from savi_plugin.data.paths import absolute_path

    if not item.origin.rpartition(":")[2].isdigit():  # a folder of videos: its ids are its files' names
        advice = "rename one of the files"
    elif item.id_from and first.id_from:
        advice = ("two questions on one video need ids of their own" if absolute_path(item.video) ==
                  absolute_path(first.video) else "two videos of one file name need ids of their own") + \
            ": give each record an 'id'"
    else:
        advice = f"give {'this record' if item.id_from else f'the record at {first.origin}'} an 'id' of its own"
    return f"; {'; '.join(said)}: {advice}"
