"""``data/kept.py``: a kept product is used again only while it is the slot's own.

GENERATED: every kind of source (a file, a model folder, a folder) x every way it can stop being what the product
was made from (edited in place, replaced by another content of the same size, removed, a file added or removed in
a folder), every key of a slot x every way another run's slot differs (another value, the key missing, a key
added, an identity of other content), and every member of a written record x an edit by hand. Each must be
refused naming the file and what differs; the product moved whole to another folder, unchanged, must be kept.
Every reader of a kept product (``savi ablate``'s summaries, ``savi eval suite``'s runs, ``savi align``'s base
evaluation) goes through :func:`~savi_plugin.data.kept.read_kept`: a scan checks that no other code reads them.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

import savi_plugin
from savi_plugin.data.kept import keep, kept_problem, read_kept, seal, write_kept
from savi_plugin.errors import RunError


def _model(folder: Path, weights: bytes = b"w" * 64) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def _sources(root: Path) -> dict[str, tuple[Path, str]]:
    (root / "report.json").write_text(json.dumps({"global_step": 4}))
    out = root / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    (out / "samples.jsonl").write_text('{"doc_id": 0}\n')
    return {"run report": (root / "report.json", "file"), "adapter": (_model(root / "adapter"), "model"),
            "lmms-eval output": (out, "folder")}


SLOT = {"row": "dpo", "settings": {"training": {"learning_rate": 1e-4, "max_steps": 4}, "num_frames": 8},
        "identity": {"model": {"family": "llama", "sha256": "a" * 64, "members": [["config.json", "1:x"]]}}}


def _damages(kind: str) -> list[str]:
    common = ["edited", "same size, other content", "removed"]
    return common + (["a file added", "a file removed"] if kind != "file" else [])


def _damage(path: Path, kind: str, damage: str) -> str:
    """Damage ``path``; returns what the refusal must say of it."""
    member = path if kind == "file" else path / ("model.safetensors" if kind == "model" else "samples.jsonl")
    if damage == "edited":
        member.write_bytes(member.read_bytes() + b"\n")
    elif damage == "same size, other content":
        data = member.read_bytes()
        member.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "removed":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return "is gone"
    elif damage == "a file added":
        (path / ("tokenizer.json" if kind == "model" else "extra.json")).write_text("{}")
        return "added"
    elif damage == "a file removed":
        member.unlink()
        return f"{member.name} removed"
    return "changed after it was made"


@pytest.mark.parametrize("kind,damage", [(k, d) for k in ("file", "model", "folder") for d in _damages(k)])
def test_a_source_that_changed_or_is_gone_is_named(kind, damage, tmp_path):
    sources = _sources(tmp_path)
    holder = tmp_path / "summary.json"
    record = keep(SLOT, sources, holder)
    assert kept_problem(record, SLOT, holder) is None
    name = next(n for n, (_, k) in sources.items() if k == kind)
    path = sources[name][0]
    words = _damage(path, kind, damage)
    problem = kept_problem(record, SLOT, holder)
    assert problem is not None and problem.startswith(f"its {name} {path} ") and words in problem, problem


def _slot_variants() -> list[tuple[str, dict, str]]:
    """(what, another run's slot, the key path the refusal names)."""
    import copy

    out = []

    def leaves(node, path=()):
        for key, value in node.items():
            if isinstance(value, dict) and key != "model":
                yield from leaves(value, path + (key,))
            else:
                yield path + (key,)

    for path in leaves(SLOT):
        key = ".".join(path)
        for how in ("other value", "missing"):
            other = copy.deepcopy(SLOT)
            parent = other
            for part in path[:-1]:
                parent = parent[part]
            if how == "missing":
                del parent[path[-1]]
            elif path[-1] == "model":  # an identity: other content
                parent["model"] = {**parent["model"], "sha256": "b" * 64, "members": [["config.json", "1:y"]]}
            else:
                value = parent[path[-1]]
                parent[path[-1]] = value * 10 if isinstance(value, (int, float)) else f"{value}x"
            out.append((f"{key} {how}", other, key))
    extra = copy.deepcopy(SLOT)
    extra["settings"]["lora"] = {"r": 8}
    out.append(("a key added", extra, "settings.lora.r"))
    return out


@pytest.mark.parametrize("what,other,key", _slot_variants(), ids=[v[0] for v in _slot_variants()])
def test_a_product_made_for_another_slot_is_refused_naming_the_key(what, other, key, tmp_path):
    holder = tmp_path / "summary.json"
    record = keep(SLOT, {}, holder)
    assert kept_problem(record, SLOT, holder) is None
    problem = kept_problem(record, other, holder)
    assert problem is not None and problem.startswith("it was made for another run than this one (") \
        and key in problem, problem
    assert kept_problem(keep(other, {}, holder), SLOT, holder) is not None  # and the other way round


def test_every_member_of_a_written_record_edited_by_hand_is_refused(tmp_path):
    sources = _sources(tmp_path)
    path = tmp_path / "summary.json"
    written = write_kept(path, {"train_loss": 0.5, "eval": {"mvbench": 41.0}}, slot=SLOT, sources=sources)
    assert read_kept(path, slot=SLOT, written_by="savi ablate", remedy="remove it")["train_loss"] == 0.5

    def edits(node, path=()):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                yield from edits(value, path + (key,))
            else:
                yield path + (key,)

    for member in edits({k: v for k, v in written.items() if k != "sha256"}):
        record = json.loads(json.dumps(written))
        parent = record
        for part in member[:-1]:
            parent = parent[part]
        parent[member[-1]] = "edited"
        path.write_text(json.dumps(record))
        with pytest.raises(RunError) as caught:
            read_kept(path, slot=SLOT, written_by="savi ablate", remedy="remove it")
        assert str(caught.value) == f"{path}: changed after savi ablate wrote it (its numbers are not the run's): " \
                                    f"remove it", member


@pytest.mark.parametrize("record", [{}, {"kept": None}, {"kept": {"slot": SLOT}}, {"kept": {"slot": [], "sources": {}}},
                                    {"kept": {"slot": SLOT, "sources": {"x": {"path": 1, "kind": "file"}}}},
                                    {"kept": {"slot": SLOT, "sources": {"x": {"path": "a", "kind": "pickle"}}}}])
def test_a_record_without_what_it_was_made_for_is_refused(record, tmp_path):
    """Written by hand, or by a savi that kept no record: never taken for the slot's own."""
    path = tmp_path / "done.json"
    path.write_text(json.dumps(seal(record)))
    with pytest.raises(RunError) as caught:
        read_kept(path, slot=SLOT, written_by="savi eval suite", remedy="remove it")
    message = str(caught.value)
    assert message.startswith(f"{path}: it") and message.endswith(": remove it") and "\n" not in message


@pytest.mark.parametrize("content", ['{"mine": 1}', "[1, 2]", "my notes, not JSON", ""])
def test_a_users_own_file_at_a_kept_products_name_is_named_as_not_ours(content, tmp_path):
    """Pass 23 C #16: a user's ``summary.json`` in a loss folder was described as "a None run's result" that was
    "moved or swapped", then as "changed after savi ablate wrote it". A file with no seal was not written by the
    command: said so, with moving it away as the first remedy."""
    path = tmp_path / "summary.json"
    path.write_text(content)
    with pytest.raises(RunError) as caught:
        read_kept(path, slot=SLOT, written_by="savi ablate", remedy="remove it to run it again")
    message = str(caught.value)
    assert message.startswith(f"{path}: not written by savi ablate (") and "\n" not in message, message
    assert message.endswith(": move it away, or remove it to run it again"), message


def test_a_product_moved_whole_with_its_sources_is_kept(tmp_path):
    """Sources inside the product's folder are stored relative to it: a run folder moves or is copied whole."""
    run = tmp_path / "run"
    run.mkdir()
    sources = _sources(run)
    write_kept(run / "summary.json", {"n": 1}, slot=SLOT, sources=sources)
    shutil.copytree(run, tmp_path / "moved")
    shutil.rmtree(run)
    assert read_kept(tmp_path / "moved" / "summary.json", slot=SLOT, written_by="x", remedy="y")["n"] == 1


#: the files a kept product's record lives in, by the module that writes and reads it
KEPT_PRODUCTS = {"pipeline/ablate.py": "SUMMARY", "eval/suite.py": "done.json", "pipeline/evaluate.py": "KEPT"}


def test_every_kept_product_is_written_and_read_through_the_one_check():
    """A scan of the package: the modules that call ``write_kept`` are the ones listed here, each also reads its
    product through ``read_kept``, and none of them reads that file by another route (``read_json``,
    ``read_document``)."""
    root = Path(savi_plugin.__file__).parent
    writers = set()
    for path in root.rglob("*.py"):
        text = path.read_text()
        tree = ast.parse(text)
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        names = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                 for node in calls}
        rel = path.relative_to(root).as_posix()
        if "write_kept" not in names or rel == "data/kept.py":
            continue
        writers.add(rel)
        assert "read_kept" in names, rel
        for node in calls:
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in ("read_json", "read_document", "read_document_text", "load_json"):
                assert KEPT_PRODUCTS[rel] not in ast.get_source_segment(text, node), (rel, node.lineno)
    assert writers == set(KEPT_PRODUCTS)
