"""Convert preference files between our JSONL format, the RRPO release format and TRL's format."""

from __future__ import annotations

import json
from pathlib import Path

from savi_plugin.data.readers import FORMATS, read_records, record_to_rrpo, record_to_trl

_FROM_RECORD = {"savi": lambda r: r.to_json(), "rrpo": record_to_rrpo, "trl": record_to_trl}


def convert_file(src: str | Path, dst: str | Path, src_format: str, dst_format: str) -> int:
    """Read every record of ``src`` (raising on the first bad one) and write them to ``dst``.

    A ``dst`` ending in ``.json`` is written as one JSON array (as the RRPO release ships); any other
    suffix as JSONL. Returns the number of records written.
    """
    if dst_format not in _FROM_RECORD:
        raise ValueError(f"unknown format {dst_format!r}; choose one of {', '.join(FORMATS)}")
    objects = [_FROM_RECORD[dst_format](record) for _, record in read_records(src, src_format)]
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        if dst.suffix == ".json":
            json.dump(objects, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
        else:
            for obj in objects:
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    tmp.replace(dst)  # atomic: a crash never leaves a half-converted file under the final name
    return len(objects)
