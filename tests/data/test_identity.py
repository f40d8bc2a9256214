"""Run identity by content: a weight file changed anywhere is another model, and a large file is read once per
version (its digest cached under a key the kernel changes on every write)."""

from __future__ import annotations

import json
import os

import pytest

from savi_plugin.data import identity


@pytest.fixture()
def big_model(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_onevision"}))
    weights = folder / "model.safetensors"
    with open(weights, "wb") as fh:  # above FULL_HASH_LIMIT: the cached path
        fh.truncate(identity.FULL_HASH_LIMIT + 3 * 2**20)
    return folder


def _reads(monkeypatch) -> list:
    calls = []
    real = identity._digest_file
    monkeypatch.setattr(identity, "_digest_file", lambda path, size, edge=None: calls.append(path) or real(path, size,
                                                                                                      edge))
    return calls


@pytest.mark.parametrize("where", ["middle", "first byte", "last byte"])
def test_a_weight_file_changed_anywhere_with_its_size_and_time_kept_is_another_model(where, big_model, monkeypatch):
    weights = big_model / "model.safetensors"
    before = identity.model_identity(big_model)
    st = os.stat(weights)
    offset = {"middle": st.st_size // 2, "first byte": 0, "last byte": st.st_size - 1}[where]
    with open(weights, "r+b") as fh:  # e.g. a LoRA merged into the middle layers: header and edges unchanged
        fh.seek(offset)
        fh.write(b"\x01")
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # the modification time set back, as `cp -p` would
    after = identity.model_identity(big_model)
    assert os.stat(weights).st_size == st.st_size and not identity.same_identity(before, after)


def test_a_large_file_is_read_once_per_version(big_model, monkeypatch):
    calls = _reads(monkeypatch)
    first = identity.model_identity(big_model)
    weights_reads = [p for p in calls if p.name == "model.safetensors"]
    assert len(weights_reads) == 1
    assert identity.model_identity(big_model) == first  # unchanged: its digest comes from the cache
    assert len([p for p in calls if p.name == "model.safetensors"]) == 1
    (big_model / "model.safetensors").touch()  # written since (times changed): hashed again, same content
    assert identity.model_identity(big_model) == first
    assert len([p for p in calls if p.name == "model.safetensors"]) == 2


def test_without_a_writable_cache_the_file_is_hashed_every_time(big_model, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    calls = _reads(monkeypatch)
    assert identity.model_identity(big_model) == identity.model_identity(big_model)
    assert len([p for p in calls if p.name == "model.safetensors"]) == 2


@pytest.mark.parametrize("state", ["running or killed", "finished", "another command's mark", "no mark"])
def test_an_adapter_of_an_unfinished_training_run_is_said_once(state, tiny_llava_onevision, tmp_path, caplog):
    """A ``savi train`` folder without train_report.json (a run removes it when it starts and writes it last) is
    loaded with one warning naming it; a finished run's, or a folder savi train did not make, without one."""
    from savi_plugin.models import load_backend
    from tests.builders import random_lora_adapter

    adapter = random_lora_adapter(tiny_llava_onevision, tmp_path / "tk")
    if state != "no mark":
        command = "savi generate" if state == "another command's mark" else "savi train"
        (adapter / ".savi-output.json").write_text(json.dumps({"written_by": "savi", "command": command,
                                                               "config": {"train": {"max_steps": 400}}}))
    if state == "finished":
        (adapter / identity.TRAIN_REPORT).write_text("{}")
    with caplog.at_level("WARNING", logger="savi_plugin.data.identity"):
        load_backend(tiny_llava_onevision, adapter=adapter, num_frames=4)  # generate, eval and train load here
        identity.check_adapter_base(adapter, tiny_llava_onevision)  # a second load in the same process
    said = [r.getMessage() for r in caplog.records if "has not finished" in r.getMessage()]
    if state == "running or killed":
        assert said == [f"{adapter}: its training run has not finished (no train_report.json; still running, killed "
                        f"or failed): the adapter files at its top level are not this run's result (an earlier "
                        f"run's when it extended one; checkpoint-* folders may hold later states)"]
        assert identity.unfinished_training(adapter)
    else:
        assert not said and identity.unfinished_training(adapter) is None


def test_a_base_replaced_where_it_lies_is_named_once_as_changed(tiny_llava_onevision, tmp_path):
    """The adapter's base and the model it meets are one path whose files changed: the message says so instead
    of naming the same path twice as two models."""
    import shutil

    base = tmp_path / "mT"
    shutil.copytree(tiny_llava_onevision, base)
    adapter = tmp_path / "ad"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    identity.write_adapter_identity(adapter, base, "llava_onevision")
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "savi_test": 1}))
    with pytest.raises(identity.IdentityMismatchError) as err:
        identity.check_adapter_base(adapter, base)
    assert str(err.value) == (f"{adapter}: the adapter was trained on the model at {base}, whose files have changed "
                              f"since: another base model (its files differ: config.json changed); load it onto the "
                              f"model it was "
                              f"trained on")


def test_a_copy_of_the_base_with_a_users_notes_is_the_same_model_and_a_changed_file_is_named(tiny_llava_onevision,
                                                                                           tmp_path):
    """Identity covers what a loader reads (config, weights, tokenizer, processor): a byte-identical copy with a
    NOTES.md added is the base the adapter was trained on; a weight file changed, added or removed is named."""
    import shutil

    base, copy = tmp_path / "base", tmp_path / "copy"
    shutil.copytree(tiny_llava_onevision, base)
    shutil.copytree(tiny_llava_onevision, copy)
    (copy / "NOTES.md").write_text("my notes")
    adapter = tmp_path / "ad"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    identity.write_adapter_identity(adapter, base, "llava_onevision")
    identity.check_adapter_base(adapter, copy)  # loads: the same model
    assert identity.same_identity(identity.model_identity(base), identity.model_identity(copy))
    weights = min(p.name for p in copy.glob("*.safetensors"))
    with open(copy / weights, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 1]))
    (copy / "added_tokens.json").write_text("{}")
    (copy / "processor_config.json").unlink()
    with pytest.raises(identity.IdentityMismatchError) as err:
        identity.check_adapter_base(adapter, copy)
    assert (f"another base model (its files differ: added_tokens.json added, {weights} changed, "
            f"processor_config.json removed)") in str(err.value)


def test_an_identity_recorded_over_every_file_still_matches_its_base(tiny_llava_onevision, tmp_path):
    """An adapter whose savi_adapter.json holds the identity over every file of the folder (before ``members``)
    still loads onto the unchanged base."""
    adapter = tmp_path / "ad"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    record = identity.write_adapter_identity(adapter, tiny_llava_onevision, "llava_onevision")
    stored = json.loads(record.read_text())
    stored["base_identity"] = identity.model_identity(tiny_llava_onevision, every_file=True)
    record.write_text(json.dumps(stored))
    identity.check_adapter_base(adapter, tiny_llava_onevision)


@pytest.mark.parametrize("damage", ["torn record", "record not an object", "record without its base",
                                    "torn peft config", "truncated weights", "weights short of their end",
                                    "no weights", "nan weights"])
def test_an_adapter_file_there_but_unreadable_is_refused_naming_it(damage, tiny_adapter, tiny_llava_onevision,
                                                                    tmp_path):
    """A torn ``savi_adapter.json`` was taken for "no record" (peft's class record then let the adapter onto another
    base of the family with no word), and truncated weights reached peft (a SafetensorError traceback): each is
    one :class:`AdapterFileError` line naming the file, before anything loads."""
    from tests.builders import damaged_adapter

    identity.check_adapter(tiny_adapter, tiny_llava_onevision)  # the intact adapter on its base: accepted
    adapter, damaged = damaged_adapter(tiny_adapter, tmp_path / "ad", damage)
    with pytest.raises(identity.AdapterFileError) as err:
        identity.check_adapter(adapter, tiny_llava_onevision)
    text = str(err.value)
    assert (str(damaged) in text if damage != "no weights" else f"{adapter}: the adapter holds no weights" in text)
    assert "\n" not in text and err.value.exit_code == 2
    if damage == "torn record":
        assert text.startswith(f"{damaged}:1: adapter record: invalid JSON")


def test_a_torn_checkpoint_record_is_refused_not_taken_for_none(tiny_adapter, tiny_llava_onevision, tmp_path):
    """A ``checkpoint-N`` used as an adapter is checked by its ``savi_checkpoint.json``; torn, it is named."""
    import shutil

    checkpoint = tmp_path / "checkpoint-2"
    shutil.copytree(tiny_adapter, checkpoint, ignore=shutil.ignore_patterns(identity.ADAPTER_FILE))
    (checkpoint / identity.CHECKPOINT_FILE).write_text('{"config": {"model": ')
    with pytest.raises(identity.AdapterFileError, match=rf"^{checkpoint / identity.CHECKPOINT_FILE}:1: adapter record"):
        identity.check_adapter_base(checkpoint, tiny_llava_onevision)


@pytest.mark.parametrize("record", ["savi_adapter.json", "savi_checkpoint.json"])
@pytest.mark.parametrize("node", ["folder", "fifo", "broken link"])
def test_an_adapter_record_replaced_by_another_kind_of_node_is_refused_not_taken_for_none(record, node, tiny_adapter,
                                                                                          tiny_llava_onevision,
                                                                                          tmp_path):
    """Pass 18 A #41, #42: a folder or FIFO at ``savi_adapter.json`` (or a checkpoint's ``savi_checkpoint.json``)
    was taken for "no record", and the adapter went onto another base of its family with no word."""
    import shutil

    adapter = tmp_path / "ad"
    shutil.copytree(tiny_adapter, adapter, ignore=shutil.ignore_patterns(identity.ADAPTER_FILE))
    path = adapter / record
    if node == "folder":
        path.mkdir()
    elif node == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(tmp_path / "gone.json")
    with pytest.raises(identity.AdapterFileError) as err:
        identity.check_adapter_base(adapter, tiny_llava_onevision)
    named = {"folder": "is a directory", "fifo": "is a FIFO (named pipe)", "broken link": "is a broken symbolic link"}
    assert str(err.value).startswith(f"{path}: adapter record: {named[node]}"), err.value


def test_a_damaged_model_weight_file_is_named_when_its_load_fails(tiny_llava_onevision, tmp_path):
    """safetensors' own error names no file: the load's one line names the damaged one."""
    import shutil

    from savi_plugin.models import load_backend
    from savi_plugin.models.backends.base import ModelLoadError

    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    weights = min(model.glob("*.safetensors"))
    os.truncate(weights, weights.stat().st_size - 10)
    with pytest.raises(ModelLoadError) as err:
        load_backend(model, num_frames=4)
    assert str(err.value).startswith(f"{model}: the model cannot be loaded: {weights}: damaged (")


@pytest.mark.parametrize("named", ["another base of the family", "a copy of the base", "a hub id", "a missing path"])
def test_an_adapter_without_savis_record_is_compared_with_the_local_base_peft_names(named, tiny_llava_onevision,
                                                                                   tmp_path, caplog):
    """Red team 11, A5: a copied ``checkpoint-N`` without ``savi_checkpoint.json`` loaded onto another base of its
    family with no word, though peft's ``base_model_name_or_path`` named an existing local folder of other content.
    That folder is compared by identity with the model the adapter meets: other content is refused as with savi's
    record, a copy loads silently; a hub id or a missing path leaves the family check (here: a warning)."""
    import shutil

    trained_on, base = tmp_path / "tiny", tmp_path / "warm"
    shutil.copytree(tiny_llava_onevision, trained_on)
    shutil.copytree(tiny_llava_onevision, base)
    if named == "another base of the family":
        weights = min(p.name for p in base.glob("*.safetensors"))
        with open(base / weights, "r+b") as fh:
            fh.seek(-1, os.SEEK_END)
            last = fh.read(1)
            fh.seek(-1, os.SEEK_END)
            fh.write(bytes([last[0] ^ 1]))
    recorded = {"a hub id": "org/tiny", "a missing path": str(tmp_path / "gone")}.get(named, str(trained_on))
    adapter = tmp_path / "ck2"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA",
                                                             "base_model_name_or_path": recorded}))
    if named == "another base of the family":
        with pytest.raises(identity.IdentityMismatchError) as err:
            identity.check_adapter_base(adapter, base)
        assert str(err.value) == (f"{adapter}: the adapter was trained on {trained_on} (as peft's adapter_config.json "
                                  f"names it) and would be applied to {base}, another base model (its files differ: "
                                  f"{weights} changed); load it onto the model it was trained on")
        return
    with caplog.at_level("WARNING"):
        identity.check_adapter_base(adapter, base)
    said = [r.getMessage() for r in caplog.records]
    assert said == ([] if named == "a copy of the base" else
                    [f"{adapter}: the adapter has no savi_adapter.json and its base cannot be compared with {base}; "
                     f"applying it as it is"])


def _videos(folder, sizes):
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for i, size in enumerate(sizes):
        (folder / f"v{i}.mp4").write_bytes(bytes([i + 1]) * size)
    return folder


#: each kind of identity a run stores, before and after its input changed, and what the refusal names
IDENTITY_KINDS = {
    "model": (lambda p: (p.mkdir(), (p / "config.json").write_text('{"model_type": "x"}'),
                         (p / "model.safetensors").write_bytes(b"w" * 64)),
              lambda p: ((p / "model.safetensors").write_bytes(b"v" * 64),
                         (p / "preprocessor_config.json").write_text("{}"), (p / "config.json").unlink()),
              identity.model_identity,
              "config.json removed, model.safetensors changed, preprocessor_config.json added"),
    "videos": (lambda p: _videos(p, [10, 20]), lambda p: _videos(p, [10, 20, 30]), identity.input_identity,
               "files 2 -> 3"),
    "manifest": (lambda p: p.write_text('{"id": "q0"}\n'), lambda p: p.write_text('{"id": "q0"}\n{"id": "q1"}\n'),
                 identity.input_identity, "size 13 -> 26 bytes"),
}


@pytest.mark.parametrize("kind", list(IDENTITY_KINDS))
def test_a_continuation_refused_for_a_changed_input_names_what_changed_in_it(kind, tmp_path):
    """Pass 13 A3/A4: ``identity.model changed content`` named no file. The one wording of every identity
    comparison (:func:`identity.identity_differences`) names each file added, removed or changed where the stored
    identity lists its files (a model or adapter folder), and the count or size where it holds only those."""
    from savi_plugin.data.fingerprint import ConfigMismatchError, check_same_config

    make, change, identify, named = IDENTITY_KINDS[kind]
    path = tmp_path / kind
    make(path)
    stored = {"lr": 1, "identity": {kind: identify(path)}, "recipe": {"model": {"identity": identify(path)}}}
    change(path)
    current = {"lr": 1, "identity": {kind: identify(path)}, "recipe": {"model": {"identity": identify(path)}}}
    assert identity.identity_differences(stored["identity"][kind], current["identity"][kind]) == named
    with pytest.raises(ConfigMismatchError) as caught:
        check_same_config(stored, current, output="out.jsonl", stored_at="out.jsonl.savi-output.json")
    message = str(caught.value)
    # one entry per identity, in the run's identity mapping and where a recipe's path became an identity
    assert f"identity.{kind} changed content (same path; {named})" in message, message
    assert f"recipe.model.identity changed content (same path; {named})" in message, message
    assert "sha256" not in message and "\n" not in message


@pytest.mark.parametrize("side", ["added", "removed"])
def test_an_identity_on_one_side_only_is_named_added_or_removed(side, tmp_path):
    """Pass 17 A #30: an adapter added to a finished suite was said to have ``changed content``."""
    from savi_plugin.data.fingerprint import ConfigMismatchError, check_same_config

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text("{}")
    one = {"identity": {"adapter rrpo": identity.input_identity(tmp_path / "a")}}
    both = {"identity": {**one["identity"], "adapter rrpo-2": identity.input_identity(tmp_path / "a")}}
    stored, current = (one, both) if side == "added" else (both, one)
    with pytest.raises(ConfigMismatchError) as caught:
        check_same_config(stored, current, output="suite", stored_at="suite/.savi-output.json")
    message = str(caught.value)
    assert f"identity.adapter rrpo-2 {side} (" in message and "changed content" not in message, message
