"""``data/files.py``: a document read whole is within ``$SAVI_MAX_DOCUMENT_BYTES`` (its bytes) and
``$SAVI_MAX_DOCUMENT_VALUES`` (its JSON values) at EVERY reader, and a document above a cap ends as the same
refusal wherever it is read: one ``error:`` line naming the file, its size, the cap and the variable, exit status 2
(a configuration error: the variable is what to correct), never a reader's "damaged", "unreadable" or "not ours".

GENERATED: the readers are discovered by scanning the package for calls of ``read_document``,
``read_document_text``, ``read_json`` and ``load_json`` (of a whole document: a JSON Lines record passes its own
``max_values``); every call site must have a case here, and each case x each cap runs through ``main(argv)`` in
process, or -- where a command would load a model or run a job first -- the reader's function under the ``savi``
commands' own error boundary (:func:`savi_plugin.cli.run_guarded`).
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

import savi_plugin
from tests.misuse.misuse_kit import assert_one_line_error, savi

#: the functions that read a whole document (``data.files``) or parse one (``untrusted.load_json``)
READERS = {"read_document", "read_document_text", "read_json", "load_json"}


def _enclosing_calls(tree: ast.AST, module: str) -> set[str]:
    """``module:Class.function`` of every call of a :data:`READERS` function in ``tree`` (a ``load_json`` given
    ``max_values`` reads one record, not a whole document)."""
    found: set[str] = set()

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, scope + (child.name,))
                continue
            if isinstance(child, ast.Call):
                func = child.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in READERS and not any(k.arg == "max_values" for k in child.keywords):
                    found.add(f"{module}:{'.'.join(scope)}")
            visit(child, scope)

    visit(tree, ())
    return found


def whole_document_readers() -> set[str]:
    """Every place in the package that reads or parses a whole document, outside the readers themselves."""
    root = Path(savi_plugin.__file__).parent
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.as_posix() in ("data/files.py", "untrusted.py") or relative.parts[0] == "bench":
            continue
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        found |= _enclosing_calls(ast.parse(path.read_text(encoding="utf-8")), module)
    return found


# ------------------------------------------------------------------------------------------------ the caps
#: cap -> (the environment that sets it, what a document above it holds, the words of its refusal)
CAPS = {
    "bytes": ({"SAVI_MAX_DOCUMENT_BYTES": "64KiB"}, lambda doc: {**doc, "pad": "x" * 70_000},
              ("KiB, above the 64.00 KiB cap on a document read whole", "$SAVI_MAX_DOCUMENT_BYTES")),
    "values": ({"SAVI_MAX_DOCUMENT_VALUES": "1000"}, lambda doc: {**doc, "pad": [0] * 1500},
               ("values (objects, lists and their items), above the 1000 cap", "$SAVI_MAX_DOCUMENT_VALUES")),
}
#: what a refusal for a cap may never say: the document is not damaged, foreign or unreadable
WRAPPED = ("unreadable", "not a table", "vouches for nothing", "--allow-incomplete", "not a DeepSpeed", "cannot read",
           "not a results file", "regenerate")


def _json(path: str, doc) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc))


def _yaml(path: str, text: str, cap: str) -> None:
    """A YAML document; above the byte cap by a comment (the value cap is JSON's: YAML has its node cap)."""
    Path(path).write_text(text + ("# " + "x" * 70_000 + "\n" if cap == "bytes" else ""))


def _guarded(call):
    """``call`` under the commands' error boundary: its exit status, as a command's."""
    from savi_plugin.cli import run_guarded

    return lambda: run_guarded(call)


GENERATE = ["generate", "--generator", "rrpo", "--model", "m", "--input", "qa.jsonl", "--output", "pairs.jsonl"]
TRAIN_DRY = ["--data", "p.jsonl", "--dry-run", "--output-dir", "t"]
PAIR = {"id": "a", "video": "v.mp4", "question": "q?", "chosen": "a red car", "rejected": "a blue car"}


def _model_config(pad):
    _json("m/config.json", pad({"model_type": "qwen2_vl"}))


def _recipe(pad, cap):
    _yaml("r.yaml", "extends: tiny_demo\n", cap)
    return ["recipes", "show", "r.yaml"]


def _deepspeed(pad, cap):
    _json("ds.json", pad({"train_batch_size": 4}))
    Path("r.yaml").write_text("extends: tiny_demo\ntrain:\n  deepspeed: ds.json\n")
    return ["train", "r.yaml", *TRAIN_DRY]


def _checkpoint(name: str, doc: dict):
    def build(pad, cap):
        from savi_plugin.training.checkpoints import resume_point

        _json(f"run/checkpoint-1/{name}", pad(doc))
        return _guarded(lambda: resume_point("run", None))
    return build


def _prompts(pad, cap):
    _yaml("p.yaml", "version: v9\n", cap)
    Path("r.yaml").write_text("extends: tiny_demo\ngenerate:\n  options:\n    prompts: p.yaml\n")
    return ["train", "r.yaml", *TRAIN_DRY]


def _shard_reports(pad, cap):
    from savi_plugin.generators.merge import _combine_reports

    _json("s.jsonl.report.json", pad({"counts": {}, "config": {}}))
    return _guarded(lambda: _combine_reports([Path("s.jsonl.report.json")]))


def _plot(pad, cap):
    _json("run/train_report.json", pad({"loss_type": "dpo", "log_history": [{"step": 1, "loss": 0.5}]}))
    return ["plot", "run"]


def _plot_checkpoint(pad, cap):
    _json("run/checkpoint-1/trainer_state.json", pad({"global_step": 1, "log_history": [{"step": 1, "loss": 0.5}]}))
    return ["plot", "run"]


def _model_config_check(pad, cap):
    from savi_plugin.data.model_config import model_config_problem

    _json("m/config.json", pad({"model_type": "qwen2_vl"}))
    return _guarded(lambda: 1 if model_config_problem("m") else 0)


def _ablation_summary(pad, cap):
    from savi_plugin.pipeline.ablate import SUMMARY, _cached

    _json(f"abl/{SUMMARY}", pad({"eval": {}}))
    return _guarded(lambda: _cached(Path("abl") / SUMMARY, dict))


def _align_manifest(pad, cap):
    from savi_plugin.pipeline.align import Manifest

    _json("run/manifest.json", pad({"recipe": {}, "iterations": []}))
    return _guarded(lambda: Manifest(Path("run"), {}))


def _detect_backend(pad, cap):
    from savi_plugin.models import detect_backend

    _model_config(pad)
    return _guarded(lambda: detect_backend("m"))


def _convert(pad, cap):
    _model_config(pad)
    return ["convert", "llava-next", "m", "dst"]


def _options(pad, cap):
    _yaml("o.yaml", "temperature: 0.5\n", cap)
    return [*GENERATE, "--options", "o.yaml"]


def _lmms_config(pad, cap):
    _yaml("c.yaml", "model: savi_video\ntasks: savi_egoschema\n", cap)
    return ["eval", "run", "--", "--config", "c.yaml"]


def _release(pad, cap):
    _json("rel.json", [pad(PAIR)])
    return ["data", "validate", "--format", "rrpo", "rel.json"]


def _report(*command: str):
    def build(pad, cap):
        Path("p.jsonl").write_text(json.dumps(PAIR) + "\n")
        _json("p.jsonl.report.json", pad({"output": "p.jsonl", "complete": True}))
        return list(command)
    return build


def _identity(pad, cap):
    from savi_plugin.data.identity import model_identity

    _model_config(pad)
    return _guarded(lambda: model_identity("m"))


def _adapter(name: str, doc: dict):
    def build(pad, cap):
        from savi_plugin.data.identity import check_adapter_base

        Path("m").mkdir()
        _json(f"ad/{name}", pad(doc))
        return _guarded(lambda: check_adapter_base("ad", "m"))
    return build


def _results(pad, cap):
    from savi_plugin.eval.results import read_json_object

    _json("res/x_results.json", pad({"results": {}}))
    return _guarded(lambda: read_json_object(Path("res/x_results.json")))


def _kept_run(pad, cap):
    from savi_plugin.eval.suite import SuitePlan, _check_kept

    _json("s/runs/base/done.json", pad({"label": "base", "adapter": None}))
    plan = SuitePlan(model="m", adapters={}, tasks=["savi_mvbench"], num_frames=2)
    return _guarded(lambda: _check_kept(Path("s/runs/base"), "base", plan))


def _compare(pad, cap):
    _json("s1/table.json", pad({"rows": [], "card": {}, "missing": []}))
    return ["eval", "compare", "s1", "s1"]


def _card_beside(pad, cap):
    from savi_plugin.eval.suite import _card_beside as read_card_beside

    _json("s1/card.json", pad({}))
    return _guarded(lambda: read_card_beside(Path("s1/table.json"), {}))


def _object_over_lines(pad, cap):
    Path("w.jsonl").write_text(json.dumps(pad({"data": [{"id": "a"}]}), indent=1))
    return ["data", "validate", "w.jsonl"]


def _annotations(official: bool):
    def build(pad, cap):
        from savi_plugin.eval.data import _read_official, read_annotation_file

        _json("ann/test.json", [pad({"question": "q?"})])
        path = Path("ann/test.json")
        return _guarded(lambda: _read_official(path, None) if official else read_annotation_file(path))
    return build


#: every reader of a whole document (``module:function``, as :func:`whole_document_readers` finds it) -> the
#: ways it is reached: ``build(pad, cap)`` writes the document (``pad`` puts it above ``cap``) and returns the argv
#: of the command that reads it, or a callable (the reader under the error boundary); with the file it names
CASES = {
    "config.checkpoint:checkpoint_model_type": [
        (lambda pad, cap: _model_config(pad) or ["train", "tiny_demo", "--model", "m", *TRAIN_DRY], "m/config.json")],
    "recipe:_read": [(_recipe, "r.yaml")],
    "training.arguments:_read_deepspeed": [(_deepspeed, "ds.json")],
    "training.checkpoints:read_identity": [(_checkpoint("savi_checkpoint.json", {"run": "x", "step": 1}),
                                            "savi_checkpoint.json")],
    "training.checkpoints:state_step": [(_checkpoint("trainer_state.json", {"global_step": 1}),
                                         "checkpoint-1/trainer_state.json")],
    "generators.prompts:read_override": [(_prompts, "p.yaml")],
    "generators.merge:_combine_reports": [(_shard_reports, "s.jsonl.report.json")],
    "inspection.curves:_read_shaped": [(_plot, "run/train_report.json")],
    "inspection.curves:_torn": [(_plot_checkpoint, "run/checkpoint-1/trainer_state.json")],
    "data.model_config:read_config": [(_model_config_check, "m/config.json")],
    "data.model_config:model_files_problem": [(_model_config_check, "m/config.json")],
    "data.kept:_read_sealed": [(_ablation_summary, "abl/summary.json"), (_kept_run, "s/runs/base/done.json")],
    "pipeline.align:Manifest.__init__": [(_align_manifest, "run/manifest.json")],
    "models:detect_backend": [(_detect_backend, "m/config.json")],
    "models.llava_next.convert:_read_json": [(_convert, "m/config.json")],
    "cli.generate:parse_options": [(_options, "o.yaml")],
    "eval.lmms_config:read_config": [(_lmms_config, "c.yaml")],
    "data.readers:iter_json_objects": [(_release, "rel.json")],
    "data.readers:_object_over_lines": [(_object_over_lines, "w.jsonl")],
    "data.provenance:load_report": [(_report("data", "convert", "p.jsonl", "out.jsonl"), "p.jsonl.report.json"),
                                    (_report("inspect", "p.jsonl", "--out", "site", "--no-progress"),
                                     "p.jsonl.report.json")],
    "data.identity:model_identity": [(_identity, "m/config.json")],
    "data.identity:_read_adapter_json": [(_adapter("savi_adapter.json", {"base_identity": {}}),
                                          "ad/savi_adapter.json")],
    "data.identity:_json_field": [(_adapter("adapter_config.json", {"auto_mapping": {}}),
                                   "ad/adapter_config.json")],
    "eval.results:read_json_object": [(_results, "res/x_results.json")],
    "eval.suite:read_table": [(_compare, "s1/table.json")],
    "eval.suite:_card_beside": [(_card_beside, "s1/card.json")],
    "eval.data:_read_json_document": [(_annotations(False), "ann/test.json"), (_annotations(True), "ann/test.json")],
}
YAML_READERS = {"recipe:_read", "generators.prompts:read_override", "cli.generate:parse_options",
                "eval.lmms_config:read_config"}


def test_every_reader_of_a_whole_document_has_a_case():
    """A new reader (a call of ``read_json`` or ``load_json`` anywhere) fails here until it has a case below."""
    found = {name.removeprefix("savi_plugin.") for name in whole_document_readers()}
    assert found == set(CASES), (sorted(found - set(CASES)), sorted(set(CASES) - found))


@pytest.mark.parametrize("cap", CAPS)
@pytest.mark.parametrize("reader, way", [(reader, n) for reader, ways in CASES.items() for n in range(len(ways))])
def test_a_document_above_a_cap_is_one_configuration_error_at_every_reader(reader, way, cap, tmp_path, monkeypatch,
                                                                           capsys):
    """Pass 11, B #27: under ``SAVI_MAX_DOCUMENT_BYTES=100`` a suite table was refused as "not a table savi eval
    suite wrote" and a run report as "unreadable ... regenerate the file, or pass --allow-incomplete", both exit 1."""
    if cap == "values" and reader in YAML_READERS:
        pytest.skip("the value cap is JSON's; a YAML document has its node cap (untrusted.MAX_NODES)")
    env, pad, words = CAPS[cap]
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    build, document = CASES[reader][way]
    run = build(pad, cap)
    if callable(run):
        capsys.readouterr()
        code, err = run(), capsys.readouterr().err
    else:
        code, _, err = savi(capsys, *run)
    assert code == 2, (reader, err)
    line = assert_one_line_error(err, document, *words)
    assert not any(word in line for word in WRAPPED), line


@pytest.mark.parametrize("node", ["fifo", "device link"])
@pytest.mark.parametrize("reader, way", [(reader, n) for reader, ways in CASES.items() for n in range(len(ways))])
def test_a_fifo_or_device_at_a_documents_place_is_named_never_read(reader, way, node, tmp_path, monkeypatch, capsys):
    """Pass 18 A #44, #47, #49, #50: a FIFO at a run report's name hung inspect, train, convert and merge, and one
    given as ``--options`` hung generate; ``/dev/zero`` was read to the 256 MiB cap and ``/dev/null`` called
    invalid JSON. Every reader of a whole document (``read_document``) opens it without blocking and names it."""
    import signal

    monkeypatch.chdir(tmp_path)
    build, document = CASES[reader][way]
    run = build(lambda doc: doc, "bytes")
    path = next(p for p in tmp_path.rglob("*") if p.as_posix().endswith(document))
    path.unlink()
    os.mkfifo(path) if node == "fifo" else path.symlink_to("/dev/zero")
    if reader == "data.identity:model_identity":  # returns an identity (its config.json unread): no exit status
        from savi_plugin.data.identity import model_identity

        run = lambda: 0 if model_identity("m")["family"] is None else 1  # noqa: E731

    def hung(*_):
        raise AssertionError(f"{reader} blocked on the {node}")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        if callable(run):
            capsys.readouterr()
            code, err = run(), capsys.readouterr().err
        else:
            code, _, err = savi(capsys, *run)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert "Traceback" not in err and "unexpected" not in err, (reader, err)
    if code != 0 and reader in NAMING_READERS:  # a reader that refuses the document names what is there
        named = "is a FIFO (named pipe)" if node == "fifo" else "is a character device"
        assert_one_line_error(err, document, named)


#: readers whose command stops on an unreadable document (the others treat it as absent or as one bad record)
NAMING_READERS = {"recipe:_read", "training.arguments:_read_deepspeed", "generators.prompts:read_override",
                  "inspection.curves:_read_shaped", "data.kept:_read_sealed",
                  "pipeline.align:Manifest.__init__",
                  "models.llava_next.convert:_read_json", "cli.generate:parse_options", "eval.lmms_config:read_config",
                  "data.provenance:load_report", "data.identity:_read_adapter_json", "eval.results:read_json_object",
                  "eval.suite:read_table"}
