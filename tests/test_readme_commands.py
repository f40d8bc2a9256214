"""Every shell command the docs tell a user to run is run by a test: README.md, eval_tasks/README.md,
benchmarks/README.md and docs/*.md.

The project rule: "A README command that no test runs is a bug. Run what README says, literally." This file makes
it hold by construction. It reads every fenced shell block of those files into commands and checks them against
:data:`COMMANDS`, the table of which test runs each one. The test fails when

* a documented command has no entry (a new README line needs its test, or an honest ``untestable:`` or
  ``not run:`` entry, :data:`NOT_RUN`);
* an entry names a test that does not exist, or a ``.ci/run`` step that does not hold the command literally;
* an entry matches no documented command (stale: the README line changed or left);
* an entry uses a substitution not listed in :data:`SUBSTITUTIONS`, or one whose README note is missing;
* a command no test runs has no note next to it in the docs saying so (:data:`UNTESTED_NOTE`), or a tested
  one has such a note in its comment.

A test "runs" a command when it calls it literally or with only the substitutions its entry names (each test
passes the documented arguments, in-process through ``savi_plugin.cli.main(argv)`` or as a subprocess). The
tests themselves run elsewhere; this file only reads text (the docs, .ci/run, the test files' AST), in about
a second.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "eval_tasks/README.md", "benchmarks/README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")))
#: the first word of a command line in a block with no language tag (other lines there are program output)
KNOWN = ("savi", "python", "pip", "torchrun", "accelerate", "deepspeed", "lmms-eval")
SHELL_TAGS = ("bash", "sh", "shell", "console")
CI = ".ci/run"
#: the phrase next to a command (its comment, or the prose just around its block) that says no test runs it
UNTESTED_NOTE = "not run by a test"
#: how a reason for running no test starts: it cannot run here, or it could and no test runs it yet (a gap,
#: said in the docs: each one is a test to write)
NOT_RUN = ("untestable: ", "not run: ")

#: what a test may change in a documented command and still count as running it; a substitution with a note
#: needs that note near the command in the README
SUBSTITUTIONS = {
    "paths": ("placeholder paths and names (PATH, LLM_PATH, ADAPTER_DIR, /ckpt/..., /data/..., runs/..., "
              "suites/..., pairs.jsonl, videos/) -> files the test builds: tiny real models (tests/conftest.py) "
              "and synthetic videos and records (tests/builders.py); `...` -> the neighbouring line's arguments",
              None),
    "small": ("sizes shrunk to the test's time: --num-frames N -> 4, benchmark sizes, --limit, train.max_steps, "
              "LoRA rank; CPU flags added (train.use_cpu=true, --no-progress); flags are added, none removed",
              None),
    "launcher": ("8 GPUs -> 2 CPU processes over gloo (2 nodes x 8 -> 2 x 1 on localhost, $NODE_RANK -> 0/1, "
                 "$MASTER -> 127.0.0.1, /shared/... -> a folder both see); the launchers torchrun, accelerate, "
                 "deepspeed -> their own `python -m` entry modules (the code the executables call)",
                 None),
    "recipe": ("a 7B recipe -> `tiny_demo` with a tiny model (the 7B recipes' own values are checked by "
               "tests/config/test_recipes.py and built by tests/pipeline/test_dry_run.py)",
               "in place of the 7B recipe"),
}


class Run(NamedTuple):
    """Who runs a documented command: pytest node ids (``path::function[param-id]``) or ``.ci/run``, and what
    they substitute (keys of :data:`SUBSTITUTIONS`). ``untestable`` ("untestable: <why>" or "not run:
    <why>", see :data:`NOT_RUN`) marks a command no test runs; ``tests`` are then the closest tests that run the
    same code path, and the docs say so next to the command."""

    tests: tuple[str, ...]
    subst: tuple[str, ...] = ()
    untestable: str | None = None


T_LAUNCH = "tests/test_launchers.py::test_launch_line_matches_the_one_process_run"
T_SUITE = "tests/eval/test_suite.py"
T_REG = "tests/eval/test_registration.py"
T_DIAG = "tests/training/test_diagnostics.py::test_readme_train_line_writes_diagnostics_beside_the_adapter"

#: documented command (whitespace-normalised, comments dropped) -> who runs it
COMMANDS: dict[str, Run] = {
    # README.md: install, test, check, demo -- .ci/run runs these lines as written, in a new venv
    'pip install -e ".[dev]"': Run((CI,)),
    "savi demo": Run((CI, "tests/demo/test_run.py::test_rrpo_pairs_from_perturbed_errors_correct_the_warmup_shortcut")),
    "python -m pytest tests -q": Run((CI,)),
    "savi doctor --eval": Run((CI, "tests/test_doctor.py::test_exit_code_fails_only_for_what_was_asked")),
    # README.md: data
    "savi data validate pairs.jsonl": Run(
        ("tests/test_paths_relative.py::test_pairs_inside_the_output_folder_are_stored_relative",
         "tests/data/test_records.py::test_validate_cli_reports_every_problem"), ("paths",)),
    "savi data convert rrpo_release.json pairs.jsonl --from rrpo --to savi": Run(
        ("tests/data/test_records.py::test_rrpo_release_converts_to_ours_and_back_without_loss",), ("paths",)),
    "savi data convert ... --from rrpo --bad-records skip": Run(
        ("tests/data/test_readers_rrpo_release.py::test_convert_skips_and_lists_records_whose_tags_do_not_strip",),
        ("paths",)),
    # README.md: generate
    "savi generate --generator rrpo --model PATH --input qa.jsonl --output pairs.jsonl --num-frames 16 "
    "--judge-model LLM_PATH --tagger-model LLM_PATH": Run(
        ("tests/generators/test_judge.py::test_cli_flags_name_the_judge_and_tagger_models",), ("paths", "small")),
    "savi generate --generator videosavi --model PATH --input videos/ --output pairs.jsonl --num-frames 32": Run(
        ("tests/generators/test_videosavi.py::test_readme_command_over_a_folder_of_videos",), ("paths", "small")),
    "savi generate ... --shard 0/4": Run(
        ("tests/generators/test_shard_merge.py::test_rrpo_two_shards_via_cli_merge_equal_unsharded",
         "tests/test_paths_relative.py::test_merge_into_another_folder_keeps_every_video_path"), ("paths", "small")),
    "savi generate merge pairs.jsonl pairs.shard*.jsonl": Run(
        ("tests/misuse/test_misuse_concurrency.py::test_the_readme_merge_example_with_a_shell_glob_works",)),
    # README.md: train
    "savi train llava_video_7b_rrpo_16f data.pairs=pairs.jsonl model.path=checkpoints/llava-video-7b-qwen2": Run(
        ("tests/pipeline/test_dry_run.py::test_readme_train_line_runs_the_7b_recipe_on_a_tiny_model",), ("small",)),
    "savi align llava_onevision_7b_videosavi --dry-run": Run(
        ("tests/pipeline/test_dry_run.py::test_readme_align_dry_run_line",)),
    # README.md: many processes, many nodes -- the test id after each line is the parametrised case
    "torchrun --nproc_per_node 8 -m savi_plugin train llava_video_7b_rrpo_16f": Run(
        (f"{T_LAUNCH}[torchrun-ddp]",), ("launcher", "recipe", "small")),
    "torchrun --nproc_per_node 8 -m savi_plugin train llava_video_7b_rrpo_16f train.deepspeed=zero3":
        Run((f"{T_LAUNCH}[torchrun-zero3]",), ("launcher", "recipe", "small")),
    "accelerate launch --multi_gpu --num_processes 8 -m savi_plugin train llava_video_7b_rrpo_16f": Run(
        (f"{T_LAUNCH}[accelerate-ddp]",), ("launcher", "recipe", "small")),
    "deepspeed --num_gpus 8 --module savi_plugin train llava_video_7b_rrpo_16f train.deepspeed=zero2":
        Run((f"{T_LAUNCH}[deepspeed-zero2]",), ("launcher", "recipe", "small")),
    "savi train llava_video_7b_rrpo_16f train.deepspeed=zero3": Run(
        (f"{T_LAUNCH}[no-launcher-zero3]",), ("recipe", "small")),
    "torchrun --nnodes 2 --node_rank $NODE_RANK --nproc_per_node 8 --master_addr $MASTER --master_port 29500 "
    "-m savi_plugin train llava_video_7b_rrpo_16f --output-dir /shared/runs/rrpo": Run(
        ("tests/test_launchers.py::test_two_nodes_resume_from_a_shared_disk_and_refuse_node_local_checkpoints",),
        ("launcher", "recipe", "small")),
    "deepspeed --hostfile hostfile --no_ssh --node_rank $NODE_RANK --master_addr $MASTER --master_port 29500 "
    "--module savi_plugin train llava_video_7b_rrpo_16f --output-dir /shared/runs/rrpo "
    "train.deepspeed=zero3": Run(
        ("tests/test_launchers.py::test_two_nodes_with_deepspeeds_hostfile_match_the_one_process_run",),
        ("launcher", "recipe", "small")),
    # README.md: evaluate
    "lmms-eval --model savi_video --model_args pretrained=PATH,adapter=ADAPTER_DIR,num_frames=32 "
    "--tasks savi_mvbench,savi_egoschema,savi_perceptiontest --output_path results/": Run(
        ("tests/eval/test_lmms_cli.py::test_results_json_holds_the_metrics",), ("paths", "small")),
    "savi eval suite videosavi --model /ckpt/base --adapter runs/rrpo/adapter --out suites/a "
    "--data-root /data/savi_eval": Run(
        (f"{T_SUITE}::test_table_equals_a_direct_computation_from_the_logged_samples",
         "tests/eval/test_builtin_tasks.py::test_suite_table_over_the_builtins_equals_a_direct_computation"),
        ("paths", "small"), "not run: the named suite `videosavi` (savi tasks and built-ins together) is not run; "
                            "the tests run its savi task and its built-ins as two task lists"),
    "savi eval compare suites/a suites/b": Run(
        (f"{T_SUITE}::test_compare_refuses_incomparable_tables",), ("paths",)),
    "savi align llava_onevision_7b_videosavi --out runs/videosavi": Run(
        ("tests/pipeline/test_align.py::test_align_runs_two_iterations_and_resumes",
         "tests/pipeline/test_dry_run.py::test_align_dry_run_of_every_shipped_recipe[llava_onevision_7b_videosavi]"),
        ("recipe", "small")),
    # README.md: see the data and the training
    # the block's four lines as written, in one working folder (my.yaml: the tiny model, pairs.jsonl, runs/train)
    "savi inspect pairs.jsonl --out report/": Run((T_DIAG,)),
    "savi train my.yaml train.diagnostics=true": Run((T_DIAG,)),
    "savi inspect pairs.jsonl --out report/ --diagnostics runs/train/diagnostics.jsonl": Run((T_DIAG,)),
    "savi plot runs/train": Run(
        (T_DIAG, "tests/inspection/test_curves.py::test_plot_draws_every_logged_metric_of_a_finished_run")),
    # eval_tasks/README.md
    "savi eval suite videosavi --model /ckpt/base --adapter runs/a/adapter --adapter runs/b/adapter "
    "--out suites/videosavi --data-root /data/savi_eval --num-frames 32 --dtype bfloat16": Run(
        (f"{T_SUITE}::test_table_equals_a_direct_computation_from_the_logged_samples",), ("paths", "small"),
        "not run: the suite test runs one adapter, in float32, on a savi task and a third-party one; the named "
        "suite `videosavi`, two adapters and --dtype are not run"),
    "savi eval suite savi_mvbench,savi_egoschema --model /ckpt/base --adapter runs/a/adapter --out suites/mine": Run(
        (f"{T_SUITE}::test_table_equals_a_direct_computation_from_the_logged_samples",), ("paths", "small"),
        "not run: these two tasks read the hub's data without --data-root; the suite test runs a task list from a "
        "local data root"),
    "savi eval compare suites/run1 suites/run2": Run(
        (f"{T_SUITE}::test_compare_refuses_incomparable_tables",), ("paths",)),
    'pip install "savi-plugin[eval]"': Run(
        (CI,), (), "untestable: savi-plugin is installed from a clone (.ci/run runs `pip install -e \".[dev]\"`, "
                   "whose lmms-eval and filelock pins equal the [eval] extra's, tests/test_packaging.py); "
                   "no package index here serves savi-plugin"),
    "lmms-eval tasks list | grep savi_": Run(
        (f"{T_REG}::test_plain_lmms_eval_tasks_list_shows_our_tasks",
         f"{T_REG}::test_startup_hook_registers_tasks_for_tasks_list")),
    "lmms-eval --model savi_video --model_args pretrained=/ckpt/LLaVA-Video-7B-Qwen2,adapter=/runs/rrpo/adapter,"
    "num_frames=32,dtype=bfloat16 --tasks savi_mvbench,savi_egoschema,savi_perceptiontest --batch_size 4 "
    "--output_path results/": Run(
        ("tests/eval/test_lmms_cli.py::test_results_json_holds_the_metrics",), ("paths", "small")),
    'lmms-eval --model savi_video ... --tasks savi_mvbench --include_path "$(savi eval tasks-path)"': Run(
        (f"{T_REG}::test_fallback_include_path_with_autoload_off",
         f"{T_REG}::test_tasks_path_is_the_installed_yaml_folder"), ("paths",),
        "not run: the test lists tasks with this --include_path (`lmms-eval tasks list`); it evaluates nothing"),
    "savi eval run -- --model savi_video ... --tasks savi_mvbench": Run(
        ("tests/eval/test_lmms_cli.py::test_savi_eval_run_adds_the_include_path",), ("paths", "small")),
    # benchmarks/README.md
    'pip install -e ".[bench]"': Run((CI,), ()),
    "savi bench train-step": Run(("tests/bench/test_train_step.py::test_printed_report",), ("small",)),
    "savi bench trl": Run(("tests/bench/test_trl_dpo.py::test_equal_losses_at_every_step",), ("small",)),
    "savi bench decode": Run(("tests/bench/test_decode.py::test_savi_bench_command",), ("small",)),
    "savi bench generation": Run(
        ("tests/bench/test_generation.py::test_generation_benchmark_reuses_the_prefix_with_equal_outputs",),
        ("small",)),
    "savi bench gpu": Run(("tests/bench/test_generation.py::test_gpu_check_runs_at_a_small_shape_on_cpu",),
                          ("small",), "untestable: needs a GPU; the test runs it at a small shape on CPU"),
    "python benchmarks/scaling.py": Run(
        ("tests/bench/test_train_step.py::test_layouts_and_ratios",), (),
        "not run: about 40 minutes on 2 cores, twice the whole suite's budget; it repeats `savi bench "
        "train-step`'s measurement over frame counts"),
    "python benchmarks/generation_throughput.py": Run(
        ("tests/bench/test_generation.py::"
         "test_generation_throughput_script_batches_and_makes_as_many_pairs_as_one_at_a_time",), ("small",)),
    "savi bench train-step --threads 1 --repeats 2": Run(
        ("tests/bench/test_train_step.py::test_printed_report",), ("small",),
        "not run: the test runs --threads 1 with one repeat (a second repeat doubles its ~50 s)"),
    "savi bench train-step --json out.json": Run(
        ("tests/bench/test_train_step.py::test_both_sides_compute_the_same_nontrivial_loss",), ("small",)),
}


# ---------------------------------------------------------------------------------------------------------------
# reading the documented commands

class Command(NamedTuple):
    text: str        # whitespace-normalised, comments dropped
    doc: str         # file, relative to the repository
    line: int        # 1-based line of its first physical line
    block: tuple[int, int]  # the fence lines around it
    raw: str         # its physical lines as written, with the comment lines just above it in its block


def normalise(command: str) -> str:
    return " ".join(command.split())


def _strip_comment(line: str) -> str:
    """The line up to an unquoted ``#`` that starts a word (a shell comment)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _split_commands(line: str) -> list[str]:
    """``a ; b`` -> ``[a, b]`` (unquoted semicolons)."""
    parts, quote, start = [], None, 0
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            parts.append(line[start:i])
            start = i + 1
    return [p for p in (*parts, line[start:]) if p.strip()]


def _is_command(text: str) -> bool:
    words = text.split()
    return bool(words) and words[0] in KNOWN


def commands_of(doc: str, root: Path = ROOT) -> list[Command]:
    """Every command of a document's fenced shell blocks: tagged bash/sh/shell/console (a console block's
    commands are its ``$ `` lines), or untagged lines whose first word is a known command."""
    lines = (root / doc).read_text().split("\n")
    found: list[Command] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"\s*(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence.group(1))),
                   len(lines))
        tag = fence.group(2).lower()
        if tag in SHELL_TAGS or not tag:
            pending, first, above, written = "", 0, [], []
            for j in range(i + 1, end):
                raw = lines[j]
                written.append(raw)
                if not pending and raw.strip().startswith("#"):
                    above.append(raw)
                    written = []
                    continue
                if tag == "console":
                    if not raw.lstrip().startswith("$ ") and not pending:
                        continue
                    raw = raw.lstrip()[2:] if not pending else raw
                text = _strip_comment(raw).rstrip()
                if not pending:
                    first = j + 1
                    written = [raw]
                if text.endswith("\\"):
                    pending += text[:-1] + " "
                    continue
                pending += text
                for part in _split_commands(pending):
                    part = normalise(part)
                    if part and (tag in SHELL_TAGS or _is_command(part)):
                        found.append(Command(part, doc, first, (i + 1, end + 1), "\n".join(above + written)))
                pending, above = "", []
        i = end + 1
    return found


def documented() -> list[Command]:
    return [c for doc in DOCS for c in commands_of(doc)]


# ---------------------------------------------------------------------------------------------------------------
# reading the tests

def _test_names(path: Path) -> set[str]:
    """``function`` and ``Class::method`` names of a test file's tests."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {f"{node.name}::{m.name}" for m in node.body
                      if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name.startswith("test")}
    return names


def missing_node(node_id: str) -> str | None:
    """Why ``path::name[param]`` names no test (None when it does). A parameter id must be written in the file
    (an ``ids=`` entry or a parameter value)."""
    path, _, rest = node_id.partition("::")
    file = ROOT / path
    if not rest or not file.is_file():
        return f"{node_id}: no test file {path}"
    name, _, param = rest.partition("[")
    if name not in _test_names(file):
        return f"{node_id}: {path} has no test {name}"
    if param and f'"{param.rstrip("]")}"' not in file.read_text():
        return f"{node_id}: {path} names no parameter id {param.rstrip(']')!r}"
    return None


def _around(command: Command) -> str:
    """What stands next to a command: its own lines and the comments just above it, and the prose paragraphs
    right before and right after its block."""
    lines = (ROOT / command.doc).read_text().split("\n")
    start, end = command.block[0] - 1, command.block[1] - 1  # 0-based fence lines

    def paragraph(i: int, step: int) -> list[str]:
        out = []
        while 0 <= i < len(lines) and not lines[i].strip():
            i += step
        while 0 <= i < len(lines) and lines[i].strip() and not lines[i].lstrip().startswith(("```", "#")):
            out.append(lines[i])
            i += step
        return out

    return "\n".join([*paragraph(start - 1, -1), command.raw, *paragraph(end + 1, 1)])


def _section(command: Command) -> str:
    """The command's section: from the heading above it to the next heading."""
    lines = (ROOT / command.doc).read_text().split("\n")
    fenced, heading = False, [0]
    for n, line in enumerate(lines):
        fenced ^= line.lstrip().startswith("```")
        if not fenced and line.startswith("#"):
            heading.append(n)
    first = max(h for h in heading if h < command.line)
    last = min([h for h in heading if h >= command.line] + [len(lines)])
    return "\n".join(lines[first:last])


# ---------------------------------------------------------------------------------------------------------------
# the checks

def test_the_parser_reads_commands_and_skips_output(tmp_path):
    """Continuations joined, comments and output dropped, ``;`` split, console prompts read."""
    (tmp_path / "doc.md").write_text("```bash\nsavi a \\\n   --b c   # note\n# only a comment\nsavi x ; savi y\n```\n"
                   "```\nstage   all\nsavi demo\n```\n"
                   "```console\n$ savi doctor  # check\nok: torch\n```\n"
                   "```yaml\nsavi: not a command\n```\n")
    got = [(c.text, c.line) for c in commands_of("doc.md", tmp_path)]
    assert got == [("savi a --b c", 2), ("savi x", 5), ("savi y", 5), ("savi demo", 9), ("savi doctor", 12)]


def test_every_documented_command_has_a_test_and_every_entry_a_command():
    commands = documented()
    assert len(commands) > 30  # the parser found the docs' blocks
    texts = {c.text for c in commands}
    unlisted = [f"{c.doc}:{c.line}: {c.text}" for c in commands if c.text not in COMMANDS]
    assert not unlisted, ("documented commands no test runs (add the test and its entry to COMMANDS in "
                          "tests/test_readme_commands.py, or an 'untestable: <why>' entry and a README note):\n"
                          + "\n".join(unlisted))
    stale = [key for key in COMMANDS if key != normalise(key) or key not in texts]
    assert not stale, "entries that match no documented command (README line changed?):\n" + "\n".join(stale)


def test_every_entry_names_real_tests_and_allowed_substitutions():
    ci = normalise((ROOT / CI).read_text())
    problems = []
    for command, run in COMMANDS.items():
        assert run.tests, command
        for node in run.tests:
            if node == CI:
                if not run.untestable and command not in ci:
                    problems.append(f"{command}: {CI} does not run it literally")
            elif why := missing_node(node):
                problems.append(why)
        problems += [f"{command}: unknown substitution {s!r}" for s in run.subst if s not in SUBSTITUTIONS]
        if run.untestable is not None and not run.untestable.startswith(NOT_RUN):
            problems.append(f"{command}: the reason must start with one of {NOT_RUN}")
    assert not problems, "\n".join(problems)


def test_the_docs_say_what_no_test_runs_and_what_a_test_substitutes():
    """A command no test runs has UNTESTED_NOTE next to it (its comment, or the prose just around its block), a
    tested one has no such comment; a substitution with a note has that note in the command's section."""
    by_text = {}
    for c in documented():
        by_text.setdefault(c.text, []).append(c)
    problems = []
    for command, run in COMMANDS.items():
        for place in by_text.get(command, []):
            where = f"{place.doc}:{place.line}: {command}"
            if run.untestable and UNTESTED_NOTE not in normalise(_around(place)):
                problems.append(f"{where}: the doc does not say {UNTESTED_NOTE!r} next to it")
            if not run.untestable and UNTESTED_NOTE in place.raw:
                problems.append(f"{where}: its comment says {UNTESTED_NOTE!r}, but {run.tests[0]} runs it")
            for note in (SUBSTITUTIONS[s][1] for s in run.subst if s in SUBSTITUTIONS and SUBSTITUTIONS[s][1]):
                if note not in normalise(_section(place)):
                    problems.append(f"{where}: its section does not say {note!r}")
    assert not problems, "\n".join(problems)
