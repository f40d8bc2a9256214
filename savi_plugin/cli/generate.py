"""``savi generate``: make preference pairs with a generator; ``savi generate merge``: merge shards.

    savi generate --generator rrpo --model ./ckpt --input samples.jsonl --output pairs.jsonl \\
        --num-frames 16 --batch-size 8 --seed 0 --option answer_format=option --perturb mask:0.25-0.5,shuffle
    savi generate --generator videosavi --model ./ckpt --input videos/ --output pairs.jsonl --shard 0/4
    savi generate merge pairs.jsonl                      # finds pairs.shard-*-of-*.jsonl
    savi generate merge pairs.jsonl a.jsonl b.jsonl      # or names them
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from savi_plugin.cli import say
from savi_plugin.config.sections import GenerateSection, ModelSection
from savi_plugin.config.values import add_flag

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate preference pairs (rrpo, videosavi), or merge shards",
        description="Generate preference pairs with a registered generator (batched, resumable, shardable). "
                    "Re-running the same command resumes: finished records are skipped.")
    sub = parser.add_subparsers(dest="generate_command", metavar="merge")
    merge = sub.add_parser("merge", help="merge shard outputs, de-duplicated by id, in input order")
    merge.add_argument("output", metavar="OUT", help="merged JSONL to write")
    merge.add_argument("shards", metavar="SHARD", nargs="*",
                       help="shard files (default: OUT's shards, OUT-stem.shard-*-of-*.jsonl)")
    merge.add_argument("--allow-incomplete", action="store_true",
                       help="merge even if shards are missing or their runs unfinished (the report lists them)")
    merge.set_defaults(func=run_merge)

    add_flag(parser, "--generator", GenerateSection, "generator", default=None,
             help="generator name (savi plugins lists them): rrpo, videosavi")
    parser.add_argument("--model", help="model directory (a saved checkpoint)")
    parser.add_argument("--input", help="a folder of videos, a JSONL manifest, or a video-QA JSONL (rrpo)")
    parser.add_argument("--output", help="preference JSONL to write (appended to, resumably)")
    parser.add_argument("--data-root", help="manifest video paths start here and may not leave it")
    add_flag(parser, "--backend", ModelSection, "backend", help="backend name if it cannot be detected from config.json")
    parser.add_argument("--adapter", help="LoRA adapter directory applied on top of --model")
    add_flag(parser, "--num-frames", ModelSection, "num_frames", help="frames per video")
    add_flag(parser, "--batch-size", GenerateSection, "batch_size")
    add_flag(parser, "--seed", GenerateSection, "seed")
    parser.add_argument("--shard", type=shard_spec,
                        help="i/n: process shard i of n, n at most 4096 (default: torchrun's RANK/WORLD_SIZE)")
    add_flag(parser, "--limit", GenerateSection, "limit")
    add_flag(parser, "--dtype", ModelSection, "dtype")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, auto (cuda:LOCAL_RANK if available)")
    parser.add_argument("--options", metavar="YAML", help="a YAML file of generator options")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="a generator option (value parsed as YAML), repeatable; overrides --options")
    parser.add_argument("--prompts", metavar="YAML", help="prompt templates overriding the generator's defaults")
    parser.add_argument("--perturb", metavar="SPEC", help="rrpo perturbations, e.g. occlude,shuffle (the default)")
    parser.add_argument("--judge-model", metavar="PATH",
                        help="rrpo: a local causal LM that judges open-ended answers ('policy': the video model)")
    parser.add_argument("--tagger-model", metavar="PATH",
                        help="rrpo: a local causal LM for the two-turn phrase tagging of long answers ('policy': "
                             "the video model)")
    # the run report is always OUT.report.json, where every reader looks (savi_plugin.data.provenance)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_generate)


def parse_options(args) -> dict:
    """Generator options from ``--options`` (YAML file), ``--option k=v``, ``--prompts`` and ``--perturb``."""
    from savi_plugin.config.values import ConfigError
    from savi_plugin.data.files import read_document_text
    from savi_plugin.untrusted import load_yaml

    options: dict = {}
    if args.options:
        try:
            text = read_document_text(args.options)
        except OSError as exc:
            raise ConfigError("", f"cannot read: {exc.strerror or exc}", args.options) from None
        except UnicodeDecodeError as exc:
            raise ConfigError("", f"cannot read: {exc}", args.options) from None
        loaded = load_yaml(text, args.options) or {}
        if not isinstance(loaded, dict):
            raise ConfigError("", "expected a mapping of option names to values", args.options)
        from savi_plugin.recipe import resolve_option_paths

        options.update(resolve_option_paths(loaded, args.options))  # `prompts: pr.yaml` beside the options file
    from_file = dict(options)
    given: dict[str, str] = {}  # option -> the command-line word that set it (--option k=v, or its own flag)
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--option", f"expected KEY=VALUE, got {item!r}")
        if key.strip() in given:  # the last would win silently, as a key twice in one mapping would
            raise ConfigError("--option", f"{key.strip()} is given twice ({given[key.strip()]!r} and {item!r}); give "
                                          f"it once")
        given[key.strip()] = item
        options[key.strip()] = load_yaml(value, f"--option {key.strip()}")  # never empty (cli._empty_argument)
    for key, flag in FLAG_OPTIONS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if not value:
            continue
        if key in given:  # two words of one command line for one option: which one is meant is the user's to say
            raise ConfigError(flag, f"{key} is given twice ({flag} and {given[key]!r}); give it once")
        given[key] = flag
        options[key] = value
    for key in sorted(set(from_file) & set(given)):  # the command line wins over the file, said
        word = given[key] if given[key].startswith("--") else f"--option {given[key]}"
        log.warning("%s replaces %s: %r of %s", word, key, from_file[key], args.options)
    return options


def check_options(generator: str, options: dict, options_file: str | None, cli_keys: set[str],
                  flags: set[str] = frozenset(), num_frames: int | None = None) -> None:
    """The generator's own declaration checks the options before anything runs; an error names where the user
    set the option: its own flag (``--perturb``, ``--prompts``; ``flags``: the options set by one), ``--option
    KEY`` (``cli_keys``), or the ``--options`` file and key -- the later of these wins, as in
    :func:`parse_options`."""
    from savi_plugin.config.values import ConfigError
    from savi_plugin.recipe import check_generator_options

    try:
        check_generator_options(generator, options, prefix="", num_frames=num_frames, frames_key="--num-frames")
    except ConfigError as exc:
        if exc.path.startswith("--"):  # a flag of its own (--num-frames)
            raise
        key = exc.path.split(".", 1)[0]
        if key in flags:
            rest = exc.path[len(key):].lstrip(".")
            raise ConfigError(f"{FLAG_OPTIONS[key]}{' ' + rest if rest else ''}", exc.message) from None
        if options_file and key not in cli_keys:
            raise ConfigError(exc.path, exc.message, options_file) from None
        raise ConfigError(f"--option {exc.path}" if exc.path else "--option", exc.message) from None


def flag_options(args) -> set[str]:
    """The generator options set by their own flag in ``args`` (``--perturb`` sets ``perturbations``)."""
    return {key for key in FLAG_OPTIONS if getattr(args, FLAG_OPTIONS[key].lstrip("-").replace("-", "_"), None)}


#: generator options that have their own flag
FLAG_OPTIONS = {"perturbations": "--perturb", "prompts": "--prompts", "judge_model": "--judge-model",
                "tagger_model": "--tagger-model"}


def run_generate(args) -> int:
    missing = [f"--{name}" for name in ("generator", "model", "input", "output") if not getattr(args, name)]
    if missing:
        say(f"error: savi generate needs {', '.join(missing)} (or the sub-command merge)", file=sys.stderr)
        return 2
    from savi_plugin.config.checkpoint import check_backend_fits
    from savi_plugin.data.record import DataError
    from savi_plugin.errors import ConfigurationError
    from savi_plugin.generators.runner import run_generation
    from savi_plugin.registry import PluginNotFoundError

    if args.report is not None:
        raise ConfigurationError(f"--report: the run report is always written beside the output "
                                 f"({args.output}.report.json), where savi train, data convert and generate merge "
                                 f"look for it; drop --report")
    options = parse_options(args)
    check_options(args.generator, options, args.options, {o.partition("=")[0].strip() for o in args.option},
                  flag_options(args), args.num_frames)
    check_backend_fits(args.model, args.backend, "--backend")
    try:
        report = run_generation(generator=args.generator, model=args.model, inputs=args.input, output=args.output,
                                backend=args.backend, num_frames=args.num_frames, batch_size=args.batch_size,
                                seed=args.seed, shard=args.shard, limit=args.limit, options=options,
                                adapter=args.adapter, dtype=args.dtype, device=args.device,
                                progress=not args.no_progress, data_root=args.data_root, model_key="--model")
    except ConfigurationError:
        raise  # the failure taxonomy's exit status 2 (savi_plugin.cli.run_guarded)
    except (DataError, PluginNotFoundError, ValueError, FileNotFoundError) as exc:
        say(f"error: {exc}", file=sys.stderr)
        return 1
    c, t = report["counts"], report["throughput"]
    print(json.dumps({"output": report["output"], "report": report["report"], "pairs": c["pairs"],
                      "skipped": c["skipped"], "failed": c["failed"], "by_reason": c["by_reason"],
                      "pairs_per_s": t["pairs_per_s"]}, indent=2))
    if not report["complete"]:  # items that failed for a transient reason (out of memory, I/O) are not done
        say(f"error: {report['output']}: {c['items_to_retry']} item(s) failed for a transient reason (see "
            f"{report['report']}); re-run the same command to retry them", file=sys.stderr)
        return 1
    return 0


def shard_spec(text: str) -> str:
    """``--shard``'s type: ``text`` when :func:`~savi_plugin.generators.runner.parse_shard` accepts it (``i/n``,
    ``0 <= i < n <= MAX_SHARDS``), else argparse's one-line refusal at the flag (exit status 2)."""
    from savi_plugin.generators.runner import parse_shard

    try:
        parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def run_merge(args) -> int:
    from savi_plugin.generators.merge import merge_shards
    from savi_plugin.generators.runner import find_shards

    shards = args.shards or find_shards(args.output)
    if not shards:
        say(f"error: no shard files given and none found next to {args.output}", file=sys.stderr)
        return 2
    # errors end at the command boundary (savi_plugin.cli): a configuration error exits 2, bad data 1
    result = merge_shards(shards, args.output, allow_incomplete=args.allow_incomplete)
    print(json.dumps({k: v for k, v in result.items() if k != "run"}, indent=2))
    return 1 if result["invalid"] else 0
