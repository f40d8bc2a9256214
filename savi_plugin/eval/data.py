"""Where the benchmark annotations and videos live: the hub layout lmms-eval uses, or a local folder.

Two sources, chosen when a task is loaded (never at import time):

* **Hub** (``SAVI_DATA_ROOT`` unset): the same dataset ids, configs and splits as lmms-eval's
  built-in ``mvbench_*``, ``egoschema_subset`` and ``perceptiontest_val_mc`` tasks; lmms-eval
  downloads them and unpacks the videos into ``$HF_HOME/<cache_dir>`` exactly as for its own tasks.
* **Local folder** (``SAVI_DATA_ROOT=/data/savi_eval``): the same JSON/parquet files and videos,
  nothing is fetched::

      $SAVI_DATA_ROOT/
        mvbench/json/<subtask>.json                 # OpenGVLab/MVBench json/<subtask>.json
        mvbench/video/<source folder>/<video>       # e.g. video/clevrer/video_validation/video_10009.mp4
        egoschema/Subset/<any>.parquet|json|jsonl   # lmms-lab/egoschema, config Subset (500 answered)
        egoschema/videos/<video_idx>.mp4
        perceptiontest/mc_question_val/<any>.parquet|json|jsonl   # lmms-lab/PerceptionTest_Val
        perceptiontest/videos/<video_name>.mp4
        videohallucer/<subset>/<subset>.json        # official files, local only (savi_plugin.eval.videohallucer)
        vidhalluc/<part>.json, vidhalluc/data/...   # official files, local only (savi_plugin.eval.vidhalluc)

Every record is checked when the task loads; a bad record raises :class:`EvalDataError` naming
file, record and field. A missing video is not an error at load time: it is logged once with a
count, marked on the doc (``savi_video_found``) and counted in the ``missing_video`` metric.

MVBench's bounded subtasks (:data:`MVBENCH_FULL_VIDEO_FOLDERS`) have two kinds of source. The pre-trimmed
clips lmms-eval reads (``star/Charades_segment/<video>`` ...) are tried first; then, for protocols that apply
bounds and records with ``start``/``end``, the full source videos the official evaluation reads with that
bound (``star/Charades_v1_480/<video>``, ``sta/sta_video/<video>``, the frame folders
``tvqa/frames_fps3_hq/<video>``). :func:`locate_video` says which was found and the bound to apply (None for a
trimmed clip). Verified here: the folder names of both (lmms-eval 0.7.3 ``tasks/mvbench/utils.py``; the notebook's
``data_list``). Not verified (no network): the hub's file names. lmms-eval joins the record's ``video`` to the
segment folder; third-party code lists hub segment files named ``<stem>_<start>_<end>.mp4`` (e.g.
``star/Charades_segment/USNP1_1.2999999999999998_15.4.mp4``) for records holding ``video: "USNP1.mp4"`` with
``start``/``end``, so that name (the numbers as Python prints them) is a further trimmed-clip candidate.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from savi_plugin.data.choices import duplicate_options, duplicate_options_message
from savi_plugin.data.files import read_document
from savi_plugin.data.options import LETTERS, option_label, strip_option_prefix
from savi_plugin.errors import DocumentTooLarge
from savi_plugin.untrusted import (
    duplicate_key_path,
    hidden_control_problem,
    length_problem,
    line_break_problem,
    load_json,
)

log = logging.getLogger(__name__)

#: Environment variable naming the local data folder (read when a task loads).
DATA_ROOT_ENV = "SAVI_DATA_ROOT"

#: MVBench subtask -> folder of its videos inside the video archive (as in MVBench's own eval code
#: and lmms-eval's ``mvbench/utils.py``).
MVBENCH_VIDEO_FOLDERS = {
    "action_sequence": "star/Charades_segment",
    "action_prediction": "star/Charades_segment",
    "action_antonym": "ssv2_video_mp4",
    "fine_grained_action": "Moments_in_Time_Raw/videos",
    "unexpected_action": "FunQA_test/test",
    "object_existence": "clevrer/video_validation",
    "object_interaction": "star/Charades_segment",
    "object_shuffle": "perception/videos",
    "moving_direction": "clevrer/video_validation",
    "action_localization": "sta/sta_video_segment",
    "scene_transition": "scene_qa/video",
    "action_count": "perception/videos",
    "moving_count": "clevrer/video_validation",
    "moving_attribute": "clevrer/video_validation",
    "state_change": "perception/videos",
    "fine_grained_pose": "nturgbd_convert",
    "character_order": "perception/videos",
    "egocentric_navigation": "vlnqa",
    "episodic_reasoning": "tvqa/video_fps3_hq_segment",
    "counterfactual_inference": "clevrer/video_validation",
}
MVBENCH_SUBTASKS = tuple(MVBENCH_VIDEO_FOLDERS)

#: MVBench subtasks whose records carry ``start``/``end`` (the 4th ``data_list`` entry True in OpenGVLab/Ask-Anything
#: ``video_chat2/mvbench.ipynb`` and pritamqu/RRPO ``eval/mvbench/mvbench.py``) -> the folder of the full source
#: videos those evaluations read with that bound. ``tvqa/frames_fps3_hq`` holds folders of frames ``00001.jpg`` ...
MVBENCH_FULL_VIDEO_FOLDERS = {
    "action_sequence": "star/Charades_v1_480",
    "action_prediction": "star/Charades_v1_480",
    "object_interaction": "star/Charades_v1_480",
    "action_localization": "sta/sta_video",
    "episodic_reasoning": "tvqa/frames_fps3_hq",
}
#: Unbounded subtasks whose folder the official notebook and RRPO name differently from lmms-eval (the same
#: videos): tried after lmms-eval's folder, so a copy laid out for the official evaluation is found too.
MVBENCH_OFFICIAL_FOLDERS = {"action_antonym": "ssv2_video", "fine_grained_pose": "nturgbd"}
#: Frame rate of MVBench's frame folders (TVQA ``frames_fps3_hq``; the references' ``read_frame(..., fps=3)``).
MVBENCH_FRAME_FOLDER_FPS = 3.0

ANNOTATION_SUFFIXES = (".parquet", ".json", ".jsonl")
#: The record field that names the video, per benchmark (MVBench, EgoSchema, PerceptionTest).
_VIDEO_FIELDS = ("video", "video_idx", "video_name")


class EvalDataError(ValueError):
    """A benchmark file or record is unusable; printed as ``file:record:field: message``.

    ``record`` is where in the file: an ``int`` is the record's position as the code counts it (0-based, what
    ``enumerate`` gives) and is printed 1-based, as every data error numbers records and lines (the pair
    readers' ``file:line``, a JSON list's first record is 1); a ``str`` is a record's key, printed as given.
    ``line`` is a JSONL file's line number (1-based, printed as given) where no record exists yet.
    """

    def __init__(self, file: str | Path, record: int | str | None, field: str | None, message: str, *,
                 line: int | None = None):
        if isinstance(record, int) and not isinstance(record, bool):
            record += 1
        elif record is None and line is not None:
            record = line
        self.file, self.record, self.field, self.message = str(file), record, field, message
        where = ":".join(str(p) for p in (file, record, field) if p is not None)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class BenchmarkSpec:
    """How one benchmark is stored.

    Attributes:
        name: our name (``mvbench`` / ``egoschema`` / ``perceptiontest``), also its folder under
            ``SAVI_DATA_ROOT``.
        hub_cache_dir: lmms-eval's ``dataset_kwargs.cache_dir``: where videos are unpacked under ``$HF_HOME``.
        local_video_dir: the video base folder under ``$SAVI_DATA_ROOT/<name>/``.
        fields: fields every record must have.
        video_relpaths: doc (and subtask) -> candidate video paths relative to the video base.
        options: doc -> the answer options in order.
        target: doc -> index of the correct option (raises ValueError with a reason if impossible).
        record_id: doc -> a stable id for messages (and the ``id`` of a scored sample).
        id_fields: the record fields whose values together name one question: no two records of a task's data may
            hold the same values there (:func:`validate_records`; the last field is the one an error names). Empty
            for the flattened official files, whose records are named by their place in the file.
        video_field: the record field naming the video (default: the first of ``fields`` among ``video``,
            ``video_idx``, ``video_name``).
        annotation_file: for benchmarks read only from ``SAVI_DATA_ROOT`` in their official annotation format
            (VideoHallucer, VidHalluc): config -> its JSON file relative to ``$SAVI_DATA_ROOT/<name>/``.
        flatten: with ``annotation_file``: ``(the file's parsed JSON, its path) -> records``, one per question the
            model answers (raising :class:`EvalDataError` naming file, record and field on a bad one). Each record
            carries :data:`SOURCE_KEY` (see :func:`source_of`): where in the file it comes from, so that the
            checks of :func:`validate_records` name the file's record and field, not the flattened document.
        answer_field: the record field ``target`` reads (``answer``; PerceptionTest's ``answer_id``), named in messages.
        options_field: the record field holding the options (``candidates``, ``option``, ``options``), named in
            errors as the file spells it.
        record_depth: annotation file -> how many leading steps of a path in its JSON name one record (1: a list's
            item or an object's member; VidHalluc's ``ach_mcq``: ``<id>.<clip>``); the rest is the field path.
    """

    name: str
    hub_cache_dir: str
    local_video_dir: str
    fields: tuple[str, ...]
    video_relpaths: Callable[[dict, str | None], list[str]]
    options: Callable[[dict], list[str]]
    target: Callable[[dict], int]
    record_id: Callable[[dict], str]
    video_field: str | None = None
    annotation_file: Callable[[str | None], str] | None = None
    flatten: Callable[[Any, Path], list[dict]] | None = None
    record_depth: Callable[[Path], int] = lambda path: 1
    options_field: str = "options"
    answer_field: str = "answer"
    id_fields: tuple[str, ...] = ()

    @property
    def local_only(self) -> bool:
        """Read from ``SAVI_DATA_ROOT`` only: its official files are not in a hub layout lmms-eval loads."""
        return self.flatten is not None

    @property
    def video_key(self) -> str | None:
        """The record field naming the video (checked as a file name when a task loads)."""
        return self.video_field or next((f for f in self.fields if f in _VIDEO_FIELDS), None)


def record_bound(doc: dict) -> tuple[Any, Any] | None:
    """The record's ``(start, end)`` in seconds as stored, or None when it has neither (checked at load time)."""
    start, end = doc.get("start"), doc.get("end")
    return None if start is None and end is None else (start, end)


def _segment_names(video: str, bound: tuple[Any, Any] | None) -> list[str]:
    """``<stem>_<start>_<end><suffix>``: the hub's trimmed-clip name reported by third-party code (unverified)."""
    if bound is None:
        return []
    stem, dot, suffix = video.rpartition(".")
    stem, suffix = (stem, dot + suffix) if dot else (video, "")
    names = [f"{stem}_{start}_{end}{suffix}" for start, end in (bound, (float(bound[0]), float(bound[1])))]
    return list(dict.fromkeys(names))


def _mvbench_videos(doc: dict, subtask: str | None) -> list[str]:
    """Trimmed-clip candidates: lmms-eval's (the hub's ``video`` revision keeps some sources under
    ``data0613/``), then the ``<stem>_<start>_<end>`` segment name."""
    if subtask not in MVBENCH_VIDEO_FOLDERS:
        raise ValueError(f"unknown MVBench subtask {subtask!r}; expected one of {', '.join(MVBENCH_SUBTASKS)}")
    folder = MVBENCH_VIDEO_FOLDERS[subtask]
    named = _segment_names(doc["video"], record_bound(doc)) if subtask in MVBENCH_FULL_VIDEO_FOLDERS else []
    official = [f"{MVBENCH_OFFICIAL_FOLDERS[subtask]}/{doc['video']}"] if subtask in MVBENCH_OFFICIAL_FOLDERS else []
    return ([f"{folder}/{doc['video']}", f"data0613/{folder}/{doc['video']}"] + [f"{folder}/{n}" for n in named]
            + official)


def mvbench_full_video(doc: dict, subtask: str | None) -> str | None:
    """The full source video (or frame folder) of a bounded subtask's record with ``start``/``end``, as the
    official evaluation reads it (``<folder>/<video>``), relative to the video base; else None."""
    if subtask not in MVBENCH_FULL_VIDEO_FOLDERS or record_bound(doc) is None:
        return None
    return f"{MVBENCH_FULL_VIDEO_FOLDERS[subtask]}/{doc['video']}"


def _mvbench_target(doc: dict) -> int:
    candidates = list(doc["candidates"])
    if doc["answer"] not in candidates:
        raise ValueError(f"answer {doc['answer']!r} is not one of the candidates {candidates!r}")
    return candidates.index(doc["answer"])


def _index_target(field: str, n_options: Callable[[dict], int]) -> Callable[[dict], int]:
    def target(doc: dict) -> int:
        value = doc[field]
        try:
            index = int(str(value).strip())
        except ValueError:
            raise ValueError(f"{field}={value!r} is not an option index") from None
        if not 0 <= index < n_options(doc):
            raise ValueError(f"{field}={index} is outside 0..{n_options(doc) - 1}")
        return index

    return target


def _named_videos(field: str) -> Callable[[dict, str | None], list[str]]:
    def relpaths(doc: dict, subtask: str | None = None) -> list[str]:
        return [f"videos/{doc[field]}.mp4", f"videos/{doc[field]}.MP4"]

    return relpaths


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "mvbench": BenchmarkSpec(
        name="mvbench", hub_cache_dir="mvbench_video", local_video_dir="video",
        fields=("video", "question", "candidates", "answer"),
        video_relpaths=_mvbench_videos,
        options=lambda doc: list(doc["candidates"]),
        target=_mvbench_target,
        record_id=lambda doc: str(doc["video"]),
        options_field="candidates",
        # MVBench has no question id and a video may carry several questions: one question is the clip (video and
        # bound) and its question and candidates
        id_fields=("video", "start", "end", "candidates", "question"),
    ),
    "egoschema": BenchmarkSpec(
        name="egoschema", hub_cache_dir="egoschema", local_video_dir="",
        fields=("question_idx", "question", "video_idx", "option", "answer"),
        video_relpaths=_named_videos("video_idx"),
        options=lambda doc: list(doc["option"]),
        target=_index_target("answer", lambda doc: len(doc["option"])),
        record_id=lambda doc: str(doc["question_idx"]),
        options_field="option",
        id_fields=("question_idx",),
    ),
    "perceptiontest": BenchmarkSpec(
        name="perceptiontest", hub_cache_dir="perceptiontest_val", local_video_dir="",
        fields=("video_name", "question", "question_id", "options", "answer_id"),
        video_relpaths=_named_videos("video_name"),
        options=lambda doc: list(doc["options"]),
        target=_index_target("answer_id", lambda doc: len(doc["options"])),
        record_id=lambda doc: f"{doc['video_name']}/{doc['question_id']}",
        answer_field="answer_id",
        id_fields=("video_name", "question_id"),  # question_id counts a video's questions (0, 1, ...)
    ),
}


def benchmark(name: str) -> BenchmarkSpec:
    """The :class:`BenchmarkSpec` called ``name``."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def data_root() -> Path | None:
    """``$SAVI_DATA_ROOT`` as a path, or None when unset or empty (read now, not at import)."""
    value = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(value).expanduser() if value else None


def hf_home() -> Path:
    """``$HF_HOME`` (default ``~/.cache/huggingface``), as lmms-eval resolves it."""
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()


def local_annotation_files(root: Path, spec: BenchmarkSpec, config: str | None, split: str | None) -> list[Path]:
    """The annotation files of one config under the local folder.

    MVBench: ``mvbench/json/<config>.json``. EgoSchema / PerceptionTest: every parquet/json/jsonl
    file in ``<benchmark>/<config>/`` (as in the hub repository, e.g. ``Subset/test-00000-of-00001.parquet``);
    when several splits share that folder, only files whose name starts with ``<split>`` are used.
    """
    from savi_plugin.data.outputs import FIXTURE_MARK_NAME
    from savi_plugin.eval.fixture_folder import unfinished_benchmarks

    base = root / spec.name
    if spec.name in unfinished_benchmarks(root):  # a fixture stopped half way: some of its files are missing
        raise EvalDataError(root / FIXTURE_MARK_NAME, None, None,
                            f"savi eval fixture was stopped while writing {spec.name}/ into {DATA_ROOT_ENV}={root}, so "
                            f"part of its files are missing: re-run that command to finish it")
    if not base.is_dir():
        raise EvalDataError(base, None, None, f"{DATA_ROOT_ENV}={root} has no {spec.name}/ folder "
                            f"(see eval_tasks/README.md for the layout, or write a small synthetic set with "
                            f"`savi eval fixture {root}`)")
    if spec.annotation_file is not None:
        path = base / spec.annotation_file(config)
        if not path.is_file():
            raise EvalDataError(path, None, None, f"annotation file not found under {DATA_ROOT_ENV}={root} (the "
                                f"benchmark's official file; `savi eval fixture DIR` writes a synthetic set)")
        return [path]
    if spec.name == "mvbench":
        files = [p for p in (base / "json" / f"{config}{s}" for s in ANNOTATION_SUFFIXES) if p.is_file()]
        if not files:
            raise EvalDataError(base / "json" / f"{config}.json", None, None, f"annotation file not found under "
                                f"{DATA_ROOT_ENV}={root} (`savi eval fixture DIR` writes a complete synthetic set)")
        return files[:1]
    folder = base / str(config)
    files = sorted(p for p in folder.glob("*") if p.suffix in ANNOTATION_SUFFIXES) if folder.is_dir() else []
    if split and any(p.name.startswith(split) for p in files):
        files = [p for p in files if p.name.startswith(split)]
    if not files:
        raise EvalDataError(folder, None, None, f"no {'/'.join(ANNOTATION_SUFFIXES)} annotation file found")
    return files


#: The key of a flattened record (:attr:`BenchmarkSpec.flatten`) that says where in the file it comes from.
SOURCE_KEY = "savi_source"


def field_path(steps: list[str | int] | tuple[str | int, ...]) -> str:
    """Steps into a JSON value as the file spells them: keys joined by ``.``, list positions as ``[i]``
    (``hallucination.question``, ``a.clip_1``, ``options[2]``)."""
    out = ""
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else f"{'.' if out else ''}{step}"
    return out


def source_of(record: int | str, **fields: str) -> dict[str, Any]:
    """A flattened record's :data:`SOURCE_KEY` value: the file's record (an ``int`` position counted from 0, or
    a key path) and, for each field of the flattened record checked by :func:`validate_records` (``question``,
    ``video``, ``options``, ``options[k]``), its path in that record as the file spells it."""
    return {"record": record, "fields": fields}


def _where(path: list[str | int], depth: int) -> tuple[int | str | None, str | None]:
    """``(record, field)`` of a path into an annotation file whose records sit ``depth`` steps deep."""
    if len(path) <= depth:
        return (path[0] if len(path) == 1 and isinstance(path[0], int) else field_path(path) or None), None
    record = path[0] if depth == 1 and isinstance(path[0], int) else field_path(path[:depth])
    return record, field_path(path[depth:])


def _duplicate_key_error(path: Path, text: bytes, depth: int, line: int | None = None) -> EvalDataError | None:
    """The :class:`EvalDataError` of the first key given twice in ``text`` (a whole file, or one JSONL ``line``),
    at ``file:record:field``, or None when it has none."""
    steps = duplicate_key_path(text)
    if steps is None:
        return None
    message = (f"key {steps[-1]!r} appears twice in one object: JSON would keep the last value silently, so which "
               f"one is meant is ambiguous (give each key once)")
    if line is not None:
        return EvalDataError(path, None, field_path(steps), message, line=line)
    return EvalDataError(path, *_where(steps, depth), message)


def _read_json_document(path: Path, depth: int = 1) -> Any:
    """A whole annotation file through :func:`savi_plugin.untrusted.load_json`: a key given twice is refused at
    ``file:record:field``. A number the strict rules refuse (``NaN``, ``1e999``) is read as ``json`` reads it, so
    that the record checks name its record and field (``end is not finite``) where a field must be a number."""
    text = read_document(path)
    error = _document_error(path)
    try:
        return load_json(text, str(path), error, strict=True)
    except EvalDataError as strict_error:
        twice = _duplicate_key_error(path, text, depth)
        if twice is not None:
            raise twice from None
        try:
            return load_json(text, str(path), error, strict=False)
        except EvalDataError:
            raise strict_error from None


def _parquet_twice(path: Path, schema: Any) -> None:
    """A parquet column (or a field of a struct column) named twice: ``to_pylist`` would keep the last silently."""
    import pyarrow as pa

    stack = [([], list(schema))]
    while stack:
        prefix, fields = stack.pop()
        seen: set[str] = set()
        for f in fields:
            if f.name in seen:
                raise EvalDataError(path, None, field_path([*prefix, f.name]), f"column {f.name!r} appears twice: "
                                    f"a record would keep the last value silently, so which one is meant is "
                                    f"ambiguous")
            seen.add(f.name)
            kind = f.type
            while pa.types.is_list(kind) or pa.types.is_large_list(kind):
                kind = kind.value_type
            if pa.types.is_struct(kind):
                stack.append(([*prefix, f.name], [kind.field(i) for i in range(kind.num_fields)]))


def read_annotation_file(path: Path) -> list[dict[str, Any]]:
    """Records from a parquet, JSON (a list of objects) or JSON-lines file; a key given twice in a record (or a
    column named twice) is an error at ``file:record:field``."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            _parquet_twice(path, pq.read_schema(path))
            return pq.read_table(path).to_pylist()
        if path.suffix == ".jsonl":
            from savi_plugin.data.readers import iter_lines, parse_line

            records = []
            for line_no, raw, ended in iter_lines(path):  # the readers' rule, bounded per line
                if raw is not None and not raw.strip():
                    continue
                record, problem = parse_line(path, line_no, raw, ended)
                if problem is not None:
                    raise (_duplicate_key_error(path, raw, 0, line_no) if raw is not None else None) or \
                        EvalDataError(path, None, None, problem.message, line=line_no)
                records.append(record)
            return records
        data = _read_json_document(path)
    except (EvalDataError, DocumentTooLarge):
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable parquet / JSON (many error types): name the file
        raise EvalDataError(path, None, None, f"cannot read: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, list):
        raise EvalDataError(path, None, None, f"expected a JSON list of records, got {type(data).__name__}")
    return data


def _document_error(path: Path) -> Callable[..., EvalDataError]:
    """The error of a whole annotation document that cannot be read (invalid JSON, above a cap): the file, and the
    line in the message (a document's line is not a record's position)."""
    return lambda message, line=None: EvalDataError(path, None, None, f"cannot read: {message}"
                                                    + (f" (line {line})" if line else ""))


def _read_official(path: Path, spec: BenchmarkSpec) -> list[dict]:
    """One official JSON annotation file (any JSON shape), flattened by ``spec.flatten`` into records."""
    try:
        raw = _read_json_document(path, spec.record_depth(path) if spec is not None else 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(path, None, None, f"cannot read: {type(exc).__name__}: {exc}") from None
    return spec.flatten(raw, path)


def validate_records(records: list[dict], spec: BenchmarkSpec, source: str | Path,
                     seen: dict[str, tuple[str | Path, int]] | None = None) -> None:
    """Check every record has the benchmark's fields, a usable question and options (:func:`check_prompt_texts`,
    the one rule of every benchmark), a usable answer and a question of its own (:func:`_check_unique`, against
    ``seen``: the earlier files of the same task's data); raise :class:`EvalDataError`. A flattened record
    (:attr:`BenchmarkSpec.flatten`) is named by its :data:`SOURCE_KEY`: the file's record and field."""
    seen = {} if seen is None else seen
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise EvalDataError(source, i, None, f"expected an object, got {type(record).__name__}")
        for field in spec.fields:
            if field not in record or record[field] is None:
                raise EvalDataError(source, i, field, "missing (EgoSchema: only the Subset config has answers)"
                                    if spec.name == "egoschema" and field == "answer" else "missing")
        located = record.get(SOURCE_KEY) if spec.flatten is not None else None
        # a spec whose options come from another field (a plugin's ``options`` function) is judged by what it reads
        if located is None and spec.options_field in record and not isinstance(record[spec.options_field],
                                                                                  (list, tuple)):
            raise EvalDataError(source, i, spec.options_field, f"expected a list of option texts, got "
                                f"{type(record.get(spec.options_field)).__name__}")
        options = spec.options(record)
        where = located["record"] if located else i
        names = located["fields"] if located else _option_names(spec.options_field, len(options))
        if spec.flatten is None and (len(options) < 2 or not all(isinstance(o, str) and o.strip() for o in options)):
            raise EvalDataError(source, i, names["options"], f"need at least two non-empty option strings, got "
                                f"{options!r}")
        check_prompt_texts(record["question"], options if located is None or "options" in names else [],
                           source, where, names)
        if spec.flatten is None:
            try:
                spec.target(record)
            except (ValueError, TypeError) as exc:
                raise EvalDataError(source, i, spec.answer_field, str(exc)) from None
        _check_video_name(record, spec, source, where, names.get(spec.video_key or "", spec.video_key))
        if spec.name == "mvbench":
            _check_record_bound(record, source, i)
        _check_unique(record, spec, source, i, seen)


def _check_unique(record: dict, spec: BenchmarkSpec, source: str | Path, i: int,
                  seen: dict[str, tuple[str | Path, int]]) -> None:
    """A question asked twice in one task's data (:attr:`BenchmarkSpec.id_fields`) is refused: the same record
    twice would be scored twice (double weight in the accuracy, the bootstrap and a suite's delta), and two
    questions under one id cannot be told apart by a join on the id."""
    if not spec.id_fields:
        return
    values = [record.get(f) for f in spec.id_fields]
    key = json.dumps(values, sort_keys=True, default=str)
    if key not in seen:
        seen[key] = (source, i)
        return
    first_source, first = seen[key]
    shown = (str(values[0]) if len(values) == 1 else
             ", ".join(f"{f}={v!r}" for f, v in zip(spec.id_fields, values) if v is not None
                       and not isinstance(v, (list, tuple))))
    at = f"record {first + 1}" if str(first_source) == str(source) else f"{first_source}:{first + 1}"
    raise EvalDataError(source, i, spec.id_fields[-1], f"{shown} appears twice (first at {at}); each question may "
                        f"appear once (the same record twice would be scored twice, two questions under one id "
                        f"cannot be told apart)")


def _option_names(field: str, n: int) -> dict[str, str]:
    """Our option field names -> a native record's (``options[1]`` -> ``candidates[1]``)."""
    return {"options": field, **{f"options[{k}]": f"{field}[{k}]" for k in range(n)}}


def check_prompt_texts(question: Any, options: list[Any], source: str | Path, record: int | str,
                       names: dict[str, str] | None = None) -> None:
    """The one rule for the texts a benchmark's prompt shows, every benchmark alike (MVBench, EgoSchema,
    PerceptionTest records; VideoHallucer's and VidHalluc's flattened ones): else :class:`EvalDataError` at
    ``file:record:field``, the field as the file spells it (``names``: our field -> the file's path, e.g.
    ``question`` -> ``hallucination.question``, ``options[2]`` -> ``Choices.C``).

    * The question and each option are one line of the prompt (``Question: ...``, ``(A) ...``, a yes/no question
      followed by its instruction): a line break (:data:`savi_plugin.untrusted.LINE_BREAKS`, U+0085 and U+2028
      too) would forge an option line, a second ``Options:`` block or an ``Answer:`` line that is not the record's.
    * No hidden control character or bidi override (:func:`savi_plugin.untrusted.hidden_control_problem`, the
      pairs' rule) and at most :data:`savi_plugin.untrusted.MAX_TEXT_CHARS` characters.
    * Options are non-empty texts, no two the same after Unicode normalisation and case folding
      (:func:`savi_plugin.data.choices.duplicate_options`), their own labels aside (EgoSchema's ``A. ...``): with
      two, the ground truth is ambiguous. An option's own label is its position's letter: ``B. none`` first is
      shown as ``A. B. none``, and a reply naming B would score another option.

    A model's control tokens are the loaded tokenizer's (``check_plain_text``): counted per document in
    ``control_token_in_text`` when the prompt is built, not here.
    """
    names = names or {}

    def fail(field: str, message: str) -> EvalDataError:
        return EvalDataError(source, record, names.get(field, field), message)

    if not isinstance(question, str):
        raise fail("question", f"must be a text, got {type(question).__name__}")
    broken = line_break_problem(question)
    problem = (length_problem(question) or (f"{broken}; the option lines come from the record's options only"
                                            if broken and options else broken) or hidden_control_problem(question))
    if problem:
        raise fail("question", problem)
    if len(options) > len(LETTERS):  # each option is shown under a letter
        raise fail("options", f"{len(options)} options; a prompt labels at most {len(LETTERS)} (A to Z)")
    for k, option in enumerate(options):
        if not isinstance(option, str) or not option.strip():
            raise fail(f"options[{k}]", f"must be a non-empty text, got {option!r}")
        problem = length_problem(option) or line_break_problem(option) or hidden_control_problem(option)
        if problem:
            raise fail(f"options[{k}]", problem)
    for k, option in enumerate(options):  # a label of another option's letter: the prompt would show two
        found = option_label(option)
        if found is not None and found != LETTERS[k] and found in LETTERS[:len(options)]:
            raise fail(f"options[{k}]", f"label {found!r} at position {LETTERS[k]}: an option's "
                                        f"own label must be its position's letter (the prompt labels it "
                                        f"{LETTERS[k]}, and a reply naming {found} would score another option)")
    texts = [strip_option_prefix(o, LETTERS[k]) if k < len(LETTERS) else o for k, o in enumerate(options)]
    twins = duplicate_options(texts)  # "A. left" and "B. ｌｅｆｔ" are one text under two labels
    if twins:
        raise fail("options", duplicate_options_message(options, twins))  # as written: ' a' and 'a' differ to see


def _check_video_name(record: dict, spec: BenchmarkSpec, source: str | Path, where: int | str,
                      name: str | None) -> None:
    video_field = spec.video_key
    video = record.get(video_field) if video_field else None
    if video_field and (not isinstance(video, str) or not video.strip(" ./") or "\x00" in video):
        raise EvalDataError(source, where, name, f"not a video file name: {video!r}")


def _check_record_bound(record: dict, source: str | Path, i: int) -> None:
    """``start``/``end`` are optional; when present, both, numbers, ``0 <= start <= end`` (else EvalDataError)."""
    from savi_plugin.video.sampling import BoundError, check_bound

    bound = record_bound(record)
    if bound is None:
        return
    for name, value in zip(("start", "end"), bound):
        if value is None:
            raise EvalDataError(source, i, name, f"missing ({'end' if name == 'start' else 'start'} is given)")
    try:
        check_bound(bound)
    except BoundError as exc:
        raise EvalDataError(source, i, exc.field, str(exc)) from None


#: where a record comes from: its annotation file, its record there (an ``int`` position counted from 0, or a key
#: path) and its video field as the file spells it -- what an error about its video names
RecordOrigin = tuple[Path, "int | str", str | None]


def load_local_records(root: Path, spec: BenchmarkSpec, config: str | None, split: str | None,
                       origins: list[RecordOrigin] | None = None) -> list[dict]:
    """Read and validate one config's records from the local folder; ``origins``, when given, gets each record's
    :data:`RecordOrigin`, in order (for :func:`locate_video`'s errors)."""
    records: list[dict] = []
    seen: dict[str, tuple[str | Path, int]] = {}  # a question's first place, across the config's files
    for path in local_annotation_files(root, spec, config, split):
        confine(path, root, path, None, None, "an annotation file behind a symlink may not leave it")
        batch = _read_official(path, spec) if spec.flatten is not None else read_annotation_file(path)
        validate_records(batch, spec, path, seen)
        for i, record in enumerate(batch):  # where a flattened record came from: for the checks above only
            located = record.pop(SOURCE_KEY, None)
            if origins is not None:
                field = (located["fields"] if located else {}).get(spec.video_key or "", spec.video_key)
                origins.append((path, located["record"] if located else i, field))
        records.extend(batch)
    if not records:
        raise EvalDataError(root / spec.name, None, None, f"config {config!r} has no records")
    return records


def video_base(spec: BenchmarkSpec, root: Path | None, hub_cache_dir: str | None = None) -> Path:
    """The folder the benchmark's relative video paths start from."""
    if root is not None:
        return root / spec.name / spec.local_video_dir
    return hf_home() / (hub_cache_dir or spec.hub_cache_dir)


@dataclass(frozen=True)
class VideoLocation:
    """Where a doc's video is.

    Attributes:
        path: the first candidate that exists, else the first candidate.
        found: whether it exists.
        bound: ``[start, end]`` seconds to sample when ``path`` is a full source video (MVBench's bounded
            subtasks under a protocol that applies bounds); None for a trimmed clip or any other video.
    """

    path: str
    found: bool
    bound: list[float] | None = None


def locate_video(spec: BenchmarkSpec, doc: dict, base: Path, subtask: str | None = None, *,
                 root: Path | None = None, source: str | Path | None = None, record: int | str | None = None,
                 bounds: bool = False, field: str | None = None) -> VideoLocation:
    """The doc's video: the trimmed-clip candidates first; with ``bounds`` (the protocol applies record bounds)
    and a record with ``start``/``end``, then the full source video (:func:`mvbench_full_video`), with its bound.

    With ``root`` (``SAVI_DATA_ROOT``) every candidate must stay inside it -- a doc's video name with ``..``,
    or a symlink pointing out (also one inside a found frame folder), raises :class:`EvalDataError` naming
    ``source``, ``record`` and ``field`` (default: the benchmark's video field; see :mod:`savi_plugin.data.paths`).
    The hub cache (no ``root``) is not confined.
    """
    field = field or spec.video_key or "video"

    full = mvbench_full_video(doc, subtask) if bounds and spec.name == "mvbench" else None
    candidates = [(base / rel, False) for rel in spec.video_relpaths(doc, subtask)]
    if full is not None:
        candidates.append((base / full, True))
    for path, _ in candidates if root is not None else ():
        confine(path, root, source if source is not None else base, record, field,
                ".., absolute paths and symlinks may not leave it")
    for path, is_full in candidates:
        try:
            exists = path.exists()
        except OSError as exc:  # a name the file system refuses (too long): no such video can exist
            raise EvalDataError(source if source is not None else base, record, field,
                                f"{str(path)[:200]}...: {exc.strerror or exc}") from None
        if exists:
            if root is not None and path.is_dir():  # a frame folder: each frame must stay inside the root too
                _confine_folder(path, root, source if source is not None else base, record, field)
            bound = [float(v) for v in record_bound(doc)] if is_full else None
            return VideoLocation(str(path), True, bound)
    return VideoLocation(str(candidates[0][0]), False)


def _confine_folder(folder: Path, root: Path, source: str | Path, record: int | str | None, field: str) -> None:
    """:class:`EvalDataError` when an entry of the frame folder ``folder`` (a symlink) leads outside ``root``."""
    for entry in folder.iterdir():
        confine(entry, root, source, record, field, "symlinks in a frame folder may not leave it")


def confine(path: Path, root: Path, source: str | Path, record: int | str | None, field: str | None,
            why: str) -> None:
    """The one rule for every file read under the data root (annotation files, videos, frames): ``path``, ``..``
    collapsed and symlinks followed, stays inside ``root``, else :class:`EvalDataError` at ``source``, ``record``,
    ``field``."""
    from savi_plugin.data.paths import is_within

    if not is_within(path, root):
        named = "it" if str(path) == str(source) else str(path)  # the annotation file is the error's own place
        raise EvalDataError(source, record, field, f"{named} resolves to {os.path.realpath(path)}, outside the data "
                                                   f"root {os.path.realpath(root)} ({why})")


def resolve_video(spec: BenchmarkSpec, doc: dict, base: Path, subtask: str | None = None, *,
                  root: Path | None = None, source: str | Path | None = None,
                  record: int | str | None = None, bounds: bool = False) -> tuple[str, bool]:
    """``(path, found)`` of :func:`locate_video`."""
    found = locate_video(spec, doc, base, subtask, root=root, source=source, record=record, bounds=bounds)
    return found.path, found.found
