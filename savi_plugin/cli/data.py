"""``savi data validate|convert``: check and convert preference files."""

from __future__ import annotations

import sys

from savi_plugin.cli import say
from savi_plugin.data.readers import FORMATS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="validate or convert preference-data files")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    validate = sub.add_parser("validate", help="check every record; exit 1 with file:line:field per problem")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--format", default="savi", choices=FORMATS)
    validate.add_argument("--data-root", default=None,
                          help="the folder relative video paths start from, as savi train's train.data_root (no "
                               "path may leave it); default: each file's folder. Every record's video must be a "
                               "file there, as training requires before its first step (videos are not decoded)")
    validate.set_defaults(func=run_validate)

    convert = sub.add_parser("convert", help="convert IN to OUT between formats")
    convert.add_argument("src", metavar="IN")
    convert.add_argument("dst", metavar="OUT")
    convert.add_argument("--from", dest="src_format", default="savi", choices=FORMATS)
    convert.add_argument("--to", dest="dst_format", default="savi", choices=FORMATS)
    convert.add_argument("--bad-records", default="raise", choices=("raise", "skip"),
                         help="raise: stop at the first bad record (default); skip: leave bad records out and "
                              "list them (the official RRPO code skips pairs whose tags do not strip cleanly)")
    convert.add_argument("--allow-incomplete", action="store_true",
                         help="convert the output of a generation run that has not finished (refused by default: "
                              "the converted file carries no run report, so it would look complete)")
    convert.add_argument("--data-root", default=None,
                         help="IN's relative video paths start at this folder (as savi train/inspect --data-root "
                              "read them): they are kept as written. Without it a relative path is relative to "
                              "IN's folder and is rewritten for OUT's, so OUT names the same videos")
    convert.set_defaults(func=run_convert)


#: most problems ``savi data validate`` lists one per line; the rest are counted ("... and N more")
MAX_LISTED = 20


def run_validate(args) -> int:
    from savi_plugin.data.paths import check_data_root, file_folder, video_file
    from savi_plugin.data.readers import read_records
    from savi_plugin.data.record import DataError
    from savi_plugin.untrusted import shown_path

    data_root = getattr(args, "data_root", None)
    check_data_root(data_root)
    problems, good = [], 0
    for path in args.files:
        base = data_root if data_root is not None else file_folder(path)
        try:  # a file with no record is refused by the readers (readers.no_record), as every reader command does
            for line, record in read_records(path, args.format, errors="collect", collected=problems):
                try:  # what training checks of each pair before its first step: the video is a file, in the root
                    video_file(record.video, base, confine=data_root is not None, file=str(path), line=line)
                except DataError as exc:
                    problems.append(exc)
                    continue
                good += 1
        except DataError as exc:
            problems.append(exc)
    say(*map(str, problems[:MAX_LISTED]))  # the one listing of validate's problems: capped, the rest counted
    if len(problems) > MAX_LISTED:
        say(f"... and {len(problems) - MAX_LISTED} more problem(s)")
    under = f" under {shown_path(data_root)}" if data_root is not None else ""
    say(f"{good} valid record(s), {len(problems)} problem(s) (videos checked to be files{under}, not decoded)",
        file=sys.stderr)
    return 1 if problems else 0


def run_convert(args) -> int:
    from savi_plugin.data.convert import convert_file
    from savi_plugin.data.outputs import check_distinct
    from savi_plugin.data.paths import check_data_root
    from savi_plugin.data.record import DataError

    check_data_root(getattr(args, "data_root", None))
    check_distinct(args.dst, {"IN": args.src}, output_name="OUT")  # converting in place would replace the source
    skipped: list[DataError] = []
    try:
        n = convert_file(args.src, args.dst, args.src_format, args.dst_format,
                         bad_records=getattr(args, "bad_records", "raise"), skipped=skipped,
                         allow_incomplete=getattr(args, "allow_incomplete", False),
                         data_root=getattr(args, "data_root", None))
    except DataError as exc:
        say(f"error: {exc}", file=sys.stderr)
        return 1
    say(f"wrote {n} record(s) to {args.dst}")
    if skipped:
        say(f"skipped {len(skipped)} bad record(s):", *(f"  {problem}" for problem in skipped), file=sys.stderr)
    return 0
