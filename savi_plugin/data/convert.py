"""Convert preference files between our JSONL format, the RRPO release format and TRL's format."""

from __future__ import annotations

from pathlib import Path

from savi_plugin.data.identity import input_identity
from savi_plugin.data.outputs import claim, write_json, write_jsonl
from savi_plugin.data.readers import FORMATS, read_records, record_to_rrpo, record_to_trl
from savi_plugin.data.record import DataError

_FROM_RECORD = {"savi": lambda r: r.to_json(), "rrpo": record_to_rrpo, "trl": record_to_trl}


BAD_RECORDS = ("raise", "skip")


def convert_file(src: str | Path, dst: str | Path, src_format: str, dst_format: str, *, bad_records: str = "raise",
                 skipped: list[DataError] | None = None) -> int:
    """Read every record of ``src`` and write them to ``dst``.

    A ``dst`` ending in ``.json`` is written as one JSON array (as the RRPO release ships); any other
    suffix as JSONL. Returns the number of records written.

    Args:
        bad_records: ``raise`` stops at the first bad record (nothing is written); ``skip`` leaves bad
            records out and appends each one's :class:`DataError` (``file:line:field: message``) to
            ``skipped``. The official RRPO code skips a released pair whose ``<MASK>`` tags do not align with
            its plain text (``preprocess_masked`` in ``train_llavavideo.py`` zeroes its phrase ids, then
            its sanity check replaces the sample), so ``skip`` reproduces what it trains on.
    """
    if dst_format not in _FROM_RECORD:
        raise ValueError(f"unknown format {dst_format!r}; choose one of {', '.join(FORMATS)}")
    if bad_records not in BAD_RECORDS:
        raise ValueError(f"bad_records must be one of {', '.join(BAD_RECORDS)}, got {bad_records!r}")
    errors: list[DataError] = [] if skipped is None else skipped
    mode = "raise" if bad_records == "raise" else "collect"
    objects = [_FROM_RECORD[dst_format](record) for _, record in read_records(src, src_format, errors=mode,
                                                                              collected=errors)]
    unreadable = [e for e in errors if e.line is None]
    if unreadable:  # the file itself (missing, not JSON): nothing to skip record by record
        raise unreadable[0]
    dst = Path(dst)
    config = {"src": input_identity(src), "from": src_format, "to": dst_format, "bad_records": bad_records}
    with claim(dst, command="savi data convert", config=config, inputs={"SRC": src}, output_name="DST",
               replace_ours=True) as claimed:  # one writer; never the source; never a file we did not write
        claimed.write_mark()
        if dst.suffix == ".json":  # atomic: a crash never leaves a half-converted file under the final name
            write_json(dst, objects, indent=1)
        else:
            write_jsonl(dst, objects)
    return len(objects)
