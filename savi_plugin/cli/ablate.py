"""``savi ablate RECIPE --losses dpo,dpa,tdpo,ddpo,rrpo --pairs PAIRS --out DIR``: RRPO's loss ablation.

Trains each loss on the same pair file with the recipe's model, adapter and schedule, evaluates each adapter
(held-out pairs with ``--eval-pairs``; the recipe's ``eval.tasks`` unless ``--no-benchmarks``) and writes one
table (``DIR/ablation.md``, ``DIR/ablation.json``); see :mod:`savi_plugin.pipeline.ablate`. ``LOSS:key=value``
overrides one run (``dpa:train.alpha=0.1``). ``--dry-run`` builds every run's configuration and loads nothing.
Re-running the same command resumes: finished runs are kept.
"""

from __future__ import annotations

from savi_plugin.cli import refuse_flag_and_override, say


def add_parser(subparsers) -> None:
    from savi_plugin.pipeline.ablate import PAPER_LOSSES

    parser = subparsers.add_parser("ablate", help="train several losses on one pair file and compare them")
    parser.add_argument("recipe", metavar="RECIPE", help="a shipped recipe name or a YAML path")
    parser.add_argument("overrides", nargs="*", metavar="[LOSS:]key.path=value")
    parser.add_argument("--losses", default=",".join(PAPER_LOSSES),
                        help=f"comma-separated registered losses (default: RRPO's table, {','.join(PAPER_LOSSES)})")
    parser.add_argument("--pairs", help="the preference file every run trains on (default: the recipe's data.pairs)")
    parser.add_argument("--eval-pairs", help="held-out preference pairs: each adapter's implicit-reward accuracy")
    parser.add_argument("--no-benchmarks", action="store_true",
                        help="skip the lmms-eval evaluation of the base model and each adapter on eval.tasks")
    parser.add_argument("--out", required=True, help="the ablation folder (re-run with the same folder to resume)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the recipe and build every run's configuration; load and write nothing")
    parser.set_defaults(func=run)


def run(args) -> int:
    from savi_plugin.pipeline.ablate import dry_run_ablation, markdown, run_ablation

    refuse_flag_and_override(args.overrides, {"--pairs": ("data.pairs", args.pairs)})
    losses = [loss.strip() for loss in args.losses.split(",") if loss.strip()]
    if args.dry_run:
        say(*dry_run_ablation(args.recipe, losses, args.out, args.pairs, args.overrides,
                                 eval_pairs=args.eval_pairs, benchmarks=not args.no_benchmarks))
        return 0
    table = run_ablation(args.recipe, losses, args.out, pairs=args.pairs, overrides=args.overrides,
                         eval_pairs=args.eval_pairs, benchmarks=not args.no_benchmarks)
    print(markdown(table), end="")
    say(f"table: {args.out}/ablation.md ({args.out}/ablation.json)")
    return 0 if table["rows"] else 1
