"""Convert preference files between our JSONL format, the RRPO release format and TRL's format."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from savi_plugin.data.identity import input_identity
from savi_plugin.data.outputs import claim, file_output, sidecar, write_reported
from savi_plugin.data.paths import absolute_path, path_for_file, path_from_file, resolve_video_path
from savi_plugin.data.provenance import carried_model, carried_state, check_finished, record_model_for, vouch
from savi_plugin.data.readers import BAD_RECORD, FORMATS, read_records, record_to_rrpo, record_to_trl
from savi_plugin.data.record import DataError

log = logging.getLogger(__name__)

#: the formats that carry a record's ``<MASK>`` phrase tags (TRL's has no place for them)
TAGGED_FORMATS = ("savi", "rrpo")
_FROM_RECORD = {"savi": lambda r: r.to_json(), "rrpo": record_to_rrpo, "trl": record_to_trl}


BAD_RECORDS = ("raise", "skip")


def rebased_video(video: str, src: str | Path, dst: str | Path, data_root: str | Path | None = None) -> str:
    """A record's ``video`` as the file ``dst`` stores it, read from the file ``src`` (README "Paths, everywhere").

    A stored path is relative to the folder of the file that holds it, or absolute: it is kept as written when it
    names the same file from ``dst`` (an absolute path; ``dst`` in ``src``'s folder), else resolved against
    ``src`` and stored by :func:`~savi_plugin.data.paths.path_for_file` for ``dst``. With a ``data_root`` (the
    files are read with ``--data-root``, where relative paths start at the root, not at the file) it is kept.
    """
    if data_root is not None:
        return video
    here, there = path_from_file(video, src), path_from_file(video, dst)
    if absolute_path(here) == absolute_path(there):
        return video
    return path_for_file(here, dst)


def _rebased_meta(meta: dict, src: str | Path, dst: str | Path) -> dict:
    """A record's ``meta`` as ``dst`` stores it: ``meta.model`` (the model that made the pair, a path relative to
    the file that holds it) rewritten to name the same model from ``dst`` (:func:`record_model_for`), as training
    compares it."""
    if "model" not in meta:
        return meta
    return {**meta, "model": record_model_for(meta["model"], src, dst)}


def convert_file(src: str | Path, dst: str | Path, src_format: str, dst_format: str, *, bad_records: str = "raise",
                 skipped: list[DataError] | None = None, allow_incomplete: bool = False,
                 data_root: str | Path | None = None) -> int:
    """Read every record of ``src`` and write them to ``dst``.

    A ``dst`` ending in ``.json`` is written as one JSON array (as the RRPO release ships); any other
    suffix as JSONL. Returns the number of records written.

    Args:
        bad_records: ``raise`` stops at the first bad record (nothing is written); ``skip`` leaves bad
            records out and appends each one's :class:`DataError` (``file:line:field: message``) to
            ``skipped``. The official RRPO code skips a released pair whose ``<MASK>`` tags do not align with
            its plain text (``preprocess_masked`` in ``train_llavavideo.py`` zeroes its phrase ids, then
            its sanity check replaces the sample), so ``skip`` reproduces what it trains on.
        allow_incomplete: convert the product of an unfinished generation run (refused by default,
            :func:`savi_plugin.data.provenance.check_finished`). The converted file's report says what its source's
            said: incomplete (with why), complete (a finished run's), unverified (a copy without its run report),
            or nothing (no run's product); it names the model that made the pairs (formats without ``meta`` drop
            it from the records) and the converted file's content identity.
        data_root: the files' relative video paths start at this folder (as ``--data-root`` reads them), so they
            are kept as written; without it each is relative to the folder of the file that holds it and is
            rebased for ``dst`` (:func:`rebased_video`), so the converted file names the same videos. With it, a
            path that leaves the root is a bad record (``outside_data_root``), as every reader under a root counts it.

    Raises:
        DataError: a bad record (``raise``), an unreadable file, or no record to write.
        UnfinishedDataError: ``src`` is an unfinished generation run's output.
    """
    if dst_format not in _FROM_RECORD:
        raise ValueError(f"unknown format {dst_format!r}; choose one of {', '.join(FORMATS)}")
    if bad_records not in BAD_RECORDS:
        raise ValueError(f"bad_records must be one of {', '.join(BAD_RECORDS)}, got {bad_records!r}")
    errors: list[DataError] = [] if skipped is None else skipped
    mode = "raise" if bad_records == "raise" else "collect"
    records = []
    for line, record in read_records(src, src_format, errors=mode, collected=errors):
        if data_root is not None:  # the paths are kept as written, so each must stay inside the root it names
            try:
                resolve_video_path(record.video, data_root, confine=True, file=str(src), line=line)
            except DataError as escape:
                if bad_records == "raise":
                    raise
                errors.append(escape)
                continue
        records.append(record)
    objects = [_FROM_RECORD[dst_format](replace(record, video=rebased_video(record.video, src, dst, data_root),
                                                meta=_rebased_meta(record.meta, src, dst)))
               for record in records]
    unreadable = [e for e in errors if e.line is None]
    if unreadable:  # the file itself (missing, not JSON): nothing to skip record by record
        raise unreadable[0]
    if not objects:  # an empty result is never what was asked for (validate and train refuse such a file too)
        raise DataError(str(src), None, None, f"no valid record to convert ({len(errors)} bad record(s)"
                                              f"{', first: ' + errors[0].message if errors else ''}); nothing written")
    why = check_finished(src, allow_incomplete=allow_incomplete, flag="--allow-incomplete",
                         use="convert what is there")
    dst = file_output(dst, "OUT")
    config = {"src": input_identity(src), "from": src_format, "to": dst_format, "bad_records": bad_records,
              **({"data_root": absolute_path(data_root)} if data_root is not None else {})}
    with claim(dst, command="savi data convert", config=config, inputs={"IN": src}, output_name="OUT",
               replace_ours=True) as claimed:  # one writer; never the source; never a file we did not write
        # what the conversion will write is said once its destination is accepted: never of a refused one
        tagged = sum(1 for record in records if record.chosen_tagged or record.rejected_tagged)
        if tagged and dst_format not in TAGGED_FORMATS:
            log.warning("%s: %d of %d record(s) carry <MASK> phrase tags, which the %s format has no place for: %s "
                        "holds them untagged (RRPO's sub-sequence reward reads the tags; convert to %s to keep them)",
                        src, tagged, len(records), dst_format, dst, " or ".join(TAGGED_FORMATS))
        if why is not None:
            log.warning("%s: %s; converting what is there (--allow-incomplete)", src, why)
        claimed.write_mark()
        report = sidecar(dst, "report.json")  # the source's state and model carried forward (data/provenance.py)
        carried = {**carried_state(src, why, "savi data convert"), "converted_from": path_for_file(src, report),
                   **carried_model(src, report)}

        def write(fh) -> None:  # a ``.json`` destination is one JSON array (as the RRPO release ships), else JSONL
            if dst.suffix == ".json":
                fh.write(json.dumps(objects, indent=1, ensure_ascii=False, default=str) + "\n")
            else:
                for obj in objects:
                    fh.write(json.dumps(obj, ensure_ascii=False) + "\n")

        # the converted file takes its name only once its report is written: never a file without what it carries
        # the records skipped (--bad-records skip), listed as a generation report lists its skipped items, so
        # ``savi inspect`` of the output shows them
        skips = {"counts": {"records": len(objects), "skipped": len(errors)},
                 "skipped": [{"item": problem.where, "line": None if problem.line is None else int(problem.line),
                              "reason": getattr(problem, "reason", None) or BAD_RECORD, "detail": problem.message}
                             for problem in errors]}
        write_reported(dst, report, write, lambda written: {**carried, **skips, **vouch(written)})
    return len(objects)
