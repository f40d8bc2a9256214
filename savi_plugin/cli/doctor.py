"""``savi doctor``: versions, whether training and evaluation can work here, known-bad combinations."""

from __future__ import annotations

import json
import sys

from savi_plugin.cli import say


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="check this installation: versions, training, lmms-eval")
    parser.add_argument("--eval", action="store_true",
                        help="fail (exit 1) also when evaluation with lmms-eval cannot work")
    parser.add_argument("--json", action="store_true", help="one JSON object per check instead of lines")
    parser.set_defaults(func=run)


def run(args) -> int:
    from savi_plugin.doctor import FAIL, exit_code, run_checks

    checks = run_checks()
    for check in checks:
        say(json.dumps(check.__dict__) if args.json else check.line())
        sys.stdout.flush()  # each line out as it is said: a later failure cannot lose it
    code = exit_code(checks, need_eval=args.eval)
    failed = [c.name for c in checks if c.status == FAIL]
    if not args.json:
        verdict = "cannot work" if code else ("works; evaluation does not" if failed else "all good")
        say(f"savi doctor: {verdict}" + (f" ({', '.join(failed)} failed)" if failed else ""))
    return code
