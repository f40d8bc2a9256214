"""A model's or adapter's own configuration checked against its weights before anything is built
(``savi_plugin.data.model_config``), through every load: ``load_backend`` (training, generation, ``savi_video``)
and ``check_adapter``."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from savi_plugin.data.identity import AdapterFileError, check_adapter
from savi_plugin.data.model_config import MODEL_JSON_FILES
from savi_plugin.models import load_backend
from savi_plugin.models.backends.base import ModelLoadError


def _load_refusal(model) -> str:
    """The one-line refusal of loading ``model`` (a :class:`ModelLoadError` is expected)."""
    with pytest.raises(ModelLoadError) as err:
        load_backend(model, num_frames=4)
    return str(err.value)


def _edit(path, change) -> None:
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("change, words", [
    # pass 19 B N18: layers were built for minutes, RSS growing, until a timeout killed lmms-eval
    (lambda c: c["text_config"].update(num_hidden_layers=4294967295),
     "config.json: text_config.num_hidden_layers: 4294967295, but the weights hold 2 decoder layer(s)"),
    # pass 19 B N1, N4: loaded and scored with an infinite norm epsilon (hidden states ~0), exit 0
    (lambda c: c["text_config"].update(rms_norm_eps={"__float__": "Infinity"}),
     "config.json: text_config.rms_norm_eps: Infinity is not a finite number"),
    (lambda c: c["text_config"].update(rms_norm_eps=float("inf")),
     "config.json: text_config.rms_norm_eps: inf is not a finite number"),
])
def test_a_model_config_its_weights_contradict_is_refused_before_it_is_built(change, words, tiny_llava_onevision,
                                                                             tmp_path):
    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    _edit(model / "config.json", change)
    start = time.perf_counter()
    assert _load_refusal(model).startswith(f"{model}: the model cannot be loaded: {words}")
    assert time.perf_counter() - start < 30  # from the headers, nothing built


@pytest.mark.parametrize("change, words", [
    # pass 19 B N17: peft tried to allocate 1 TiB, refused only by the allocator after 33 s
    (lambda c: c.update(r=4294967295), "adapter_config.json: r: 4294967295, but its LoRA weights have rank 4"),
    # pass 19 B N16: lora_alpha 1e999 (infinite) loaded and scored
    (lambda c: c.update(lora_alpha=float("inf")), "adapter_config.json: lora_alpha: inf is not a finite number"),
])
def test_an_adapter_config_its_weights_contradict_is_refused_before_peft_builds_it(change, words, tiny_adapter,
                                                                                 tiny_llava_onevision, tmp_path):
    adapter = tmp_path / "ad"
    shutil.copytree(tiny_adapter, adapter)
    _edit(adapter / "adapter_config.json", change)
    with pytest.raises(AdapterFileError, match=rf"^{adapter}: {words}"):
        check_adapter(adapter, tiny_llava_onevision)


def test_a_model_whose_weights_lack_a_tensor_is_refused_not_started_at_random(tiny_llava_onevision, tmp_path):
    """Pass 19 B N19: a base ``model.safetensors`` missing one tensor was evaluated with that tensor initialised at
    random (only transformers' load report said ``MISSING``), exit 0."""
    from safetensors.torch import load_file, save_file

    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    (weights,) = model.glob("*.safetensors")
    tensors = load_file(str(weights))
    dropped = next(name for name in sorted(tensors) if "layers.1." in name and name.endswith("q_proj.weight"))
    del tensors[dropped]
    save_file(tensors, str(weights), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"its weight files lack 1 tensor\(s\) its config asks for \(.*q_proj"):
        load_backend(model, num_frames=4)


@pytest.mark.parametrize("damage", ["keys renamed", "use_dora without its weights"])
def test_an_adapter_whose_file_lacks_weights_its_config_asks_for_is_refused(damage, tiny_adapter,
                                                                              tiny_llava_onevision, tmp_path):
    """Pass 20 A #1, #18: an adapter whose tensors were renamed, or whose config asks for DoRA weights the file does
    not hold, loaded with only peft's warning: the base model answered under the adapter's name, exit 0."""
    from safetensors.torch import load_file, save_file

    adapter = tmp_path / "ad"
    shutil.copytree(tiny_adapter, adapter)
    if damage == "keys renamed":
        weights = adapter / "adapter_model.safetensors"
        tensors = {k.replace("language_model", "lang_xx"): v for k, v in load_file(str(weights)).items()}
        save_file(tensors, str(weights), metadata={"format": "pt"})
    else:
        _edit(adapter / "adapter_config.json", lambda c: c.update(use_dora=True))
    with pytest.raises(ModelLoadError, match=rf"^{adapter}: the adapter cannot be loaded: its weight file lacks \d+ "
                                             rf"tensor\(s\) its config asks for"):
        load_backend(tiny_llava_onevision, adapter=adapter, num_frames=4)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_base_weight_holding_nan_or_infinity_is_refused_at_load(value, tiny_llava_onevision, tmp_path, capsys,
                                                                  monkeypatch):
    """Left in session 13: a base model's weights holding NaN loaded, generated (NaN logits decode to token 0) and
    trained at loss NaN with no word. Every load (``load_backend``: training, generation, ``savi_video``) refuses it,
    naming the tensor; through ``savi generate``, one ``error:`` line."""
    from safetensors.torch import load_file, save_file

    from savi_plugin.cli import main
    from tests.misuse.misuse_kit import clip

    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    weights = load_file(model / "model.safetensors")
    name = sorted(k for k in weights if k.endswith("q_proj.weight"))[0]
    weights[name][0, 0] = value
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"holds NaN or infinity"):
        load_backend(model, num_frames=4)
    (tmp_path / "v").mkdir()
    clip(tmp_path / "v" / "a.mp4")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(["generate", "--generator", "videosavi", "--model", "m", "--input", "v", "--output", "o.jsonl",
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("error: m: the model cannot be loaded: its weight ") \
        and "holds NaN or infinity" in err[0], err  # one line: with --no-progress, no "Loading weights" bar either


@pytest.mark.parametrize("narrow", [
    # pass 20 #3/#19: the tester's edit, a regex of q_proj only
    lambda c: c.update(target_modules=r"^model\.language_model\..*\.(q_proj)$"),
    lambda c: c.update(target_modules=["o_proj"]),  # a name: q_proj would also name the vision tower's
    lambda c: c.update(exclude_modules=["v_proj"]),
    lambda c: c.update(target_modules=["o_proj", "gate_proj", "up_proj", "down_proj"], layers_to_transform=[0],
                       layers_pattern="layers"),
], ids=["regex", "list", "exclude", "one layer"])
def test_an_adapter_whose_config_places_fewer_tensors_than_its_file_holds_is_refused(narrow, tiny_adapter,
                                                                                      tiny_llava_onevision, tmp_path):
    """Pass 20 #3/#19: an ``adapter_config.json`` narrowed to fewer modules than its weight file holds loaded with
    exit 0 and no word: peft dropped 24 of 28 tensors and the rest answered under the adapter's name."""
    adapter = tmp_path / "ad"
    shutil.copytree(tiny_adapter, adapter)
    _edit(adapter / "adapter_config.json", narrow)
    weights = adapter / "adapter_model.safetensors"
    with pytest.raises(ModelLoadError, match=rf"^{weights}: the adapter cannot be loaded: \d+ of the \d+ tensors of "
                                             rf"its weight file \(.*proj.*\) are on modules its adapter_config.json "
                                             rf"does not target"):
        load_backend(tiny_llava_onevision, adapter=adapter, num_frames=4)


def test_an_adapter_as_saved_loads(tiny_adapter, tiny_llava_onevision):
    """The check above compares the file with what peft placed, named as peft saves it: an intact adapter loads."""
    load_backend(tiny_llava_onevision, adapter=tiny_adapter, num_frames=4)


def test_the_load_report_of_a_refused_model_is_not_printed(tiny_llava_onevision, tmp_path):
    """Pass 20 #5: a model refused for tensors its weights lack printed transformers' coloured ~20-line load
    table before its one error line; the table is now logged at debug level only (``savi -v``)."""
    import logging

    from safetensors.torch import load_file, save_file

    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    (weights,) = model.glob("*.safetensors")
    save_file({k: v for k, v in load_file(str(weights)).items() if not k.endswith("layers.1.self_attn.q_proj.weight")},
              str(weights), metadata={"format": "pt"})
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = seen.append
    for name in ("transformers", "savi_plugin"):
        logging.getLogger(name).addHandler(handler)
    old_level = logging.getLogger("savi_plugin").level
    logging.getLogger("savi_plugin").setLevel(logging.DEBUG)
    try:
        with pytest.raises(ModelLoadError, match="its weight files lack"):
            load_backend(model, num_frames=4)
    finally:
        for name in ("transformers", "savi_plugin"):
            logging.getLogger(name).removeHandler(handler)
        logging.getLogger("savi_plugin").setLevel(old_level)
    reports = [r for r in seen if "LOAD REPORT" in r.getMessage()]
    assert reports and all(r.levelno == logging.DEBUG for r in reports)


@pytest.mark.parametrize("damage", ["removed", "broken link"])
def test_a_model_without_its_tokenizer_file_names_it(damage, tiny_llava_onevision, tmp_path):
    """Pass 20 #6: a model folder without ``tokenizer.json`` said only "Couldn't instantiate the backend tokenizer
    from one of: )"."""
    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    (model / "tokenizer.json").unlink()
    if damage == "broken link":
        (model / "tokenizer.json").symlink_to(tmp_path / "gone.json")
    words = (rf"its tokenizer cannot be built: {model / 'tokenizer.json'} is missing" if damage == "removed" else
             r"tokenizer.json is a broken symbolic link \(to ")  # found before the load: model_files_problem
    with pytest.raises(ModelLoadError, match=rf"^{model}: the model cannot be loaded: {words}"):
        load_backend(model, num_frames=4)


@pytest.mark.parametrize("damage, words", [("broken link", "is a broken symbolic link"),
                                           ("folder", "is a directory")])
def test_an_adapter_weight_file_that_is_no_file_is_named_as_what_it_is(damage, words, tiny_adapter,
                                                                        tiny_llava_onevision, tmp_path):
    """Pass 20 #34: an ``adapter_model.safetensors`` that is a dangling link was reported as "holds no weights
    (none of adapter_model.safetensors, ...)"."""
    adapter = tmp_path / "ad"
    shutil.copytree(tiny_adapter, adapter)
    weights = adapter / "adapter_model.safetensors"
    weights.unlink()
    if damage == "broken link":
        weights.symlink_to(tmp_path / "trx" / "checkpoint-2" / "adapter_model.safetensors")
    else:
        weights.mkdir()
    with pytest.raises(AdapterFileError, match=rf"^{weights}: the adapter's weight file {words}"):
        check_adapter(adapter, tiny_llava_onevision)


def test_a_narrowed_adapter_is_refused_by_generate_and_savi_video(tiny_adapter, tiny_llava_onevision, tmp_path,
                                                                  capsys):
    """The refusal above holds at the entry points that load an adapter: ``savi generate`` (exit 2, one line,
    nothing created) and lmms-eval's ``savi_video`` (one ``SettingError``)."""
    from savi_plugin.cli import main
    from savi_plugin.eval.settings import SettingError
    from savi_plugin.eval.model import SaviVideo

    adapter = tmp_path / "ad"
    shutil.copytree(tiny_adapter, adapter)
    _edit(adapter / "adapter_config.json", lambda c: c.update(target_modules=["o_proj"]))
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text(json.dumps({"id": "q0", "video": "v.mp4", "question": "What?", "answer": "yes"}) + "\n")
    capsys.readouterr()
    code = main(["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--adapter", str(adapter),
                 "--input", str(manifest), "--output", str(tmp_path / "p.jsonl"), "--num-frames", "4",
                 "--no-progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"{adapter / 'adapter_model.safetensors'}: the adapter cannot be loaded" in lines[0]
    assert list(tmp_path.glob("p.jsonl*")) == []
    with pytest.raises(SettingError, match="are on modules its adapter_config.json does not target"):
        SaviVideo(pretrained=str(tiny_llava_onevision), adapter=str(adapter), num_frames=4)


def _add_token_beyond_the_embedding(model) -> None:
    def change(tokenizer):
        taken = max([t["id"] for t in tokenizer["added_tokens"]] + list(tokenizer["model"]["vocab"].values()))
        tokenizer["added_tokens"].append({"id": taken + 41, "content": "zebra", "single_word": False,
                                          "lstrip": False, "rstrip": False, "normalized": True, "special": False})
    _edit(model / "tokenizer.json", change)


def _shift_token_field(modality):
    def shift(model) -> str:
        config = json.loads((model / "config.json").read_text())
        key = next(k for k in (f"{modality}_token_index", f"{modality}_token_id") if k in config)
        _edit(model / "config.json", lambda c: c.update({key: c[key] + 1}))
        return rf"config.json: {key}: {config[key] + 1}, but the tokenizer's {modality} token '[^']+' has id " \
               rf"{config[key]}; the config does not describe this tokenizer"
    return shift


def _beyond(model) -> str:
    _add_token_beyond_the_embedding(model)
    return r"tokenizer.json: token 'zebra' has id (\d+), beyond the model's input embedding of \1 rows"


@pytest.mark.parametrize("family", ["tiny_llava_onevision", "tiny_qwen2_vl"])
@pytest.mark.parametrize("problem", [_shift_token_field("video"), _shift_token_field("image"), _beyond],
                         ids=["video_token", "image_token", "id_beyond_embedding"])
def test_a_tokenizer_its_model_does_not_fit_is_refused_at_load(family, problem, request, tmp_path):
    """pass 20 #7 and #32: a config whose video token id is not the tokenizer's ("video features and video tokens
    do not match") and a tokenizer holding ids beyond the embedding (IndexError) failed every item as transient,
    exit 1, the re-run the same; refused at load, a configuration error naming the file, the field and both ids."""
    model = tmp_path / "m"
    shutil.copytree(request.getfixturevalue(family), model)
    words = problem(model)
    with pytest.raises(ModelLoadError, match=rf"^{model}: the model cannot be loaded: {words}"):
        load_backend(model, num_frames=4)


@pytest.mark.parametrize("damage, words", [
    ("template", "chat_template.jinja does not render (TemplateSyntaxError: "),
    ("frame size", "the video_processor's frame size 64 is not config.json's vision_config.image_size 32")])
def test_a_processor_its_weights_do_not_fit_is_refused_at_load(damage, words, tiny_llava_onevision, tmp_path):
    """Pass 21 F #5, #6: a chat template with a Jinja syntax error, or a processor resizing frames to 64 for a
    32-pixel vision tower, failed inside lmms-eval at the first document (a traceback, torch's tensor message, exit
    1, no file named); every load refuses them, naming the file and field."""
    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    if damage == "template":
        template = model / "chat_template.jinja"
        template.write_text(template.read_text().replace("}}", "}", 1))
    else:
        config = json.loads((model / "processor_config.json").read_text())
        for part in ("image_processor", "video_processor"):
            config[part]["size"] = {"height": 64, "width": 64}
        (model / "processor_config.json").write_text(json.dumps(config))
    assert _load_refusal(model).startswith(f"{model}: the model cannot be loaded: {words}")


def test_an_adapter_config_edited_after_training_is_refused(tiny_llava_onevision, synthetic_samples, tmp_path):
    """Pass 21 F #56: ``lora_alpha`` 32 edited to 3200 in a trained adapter's ``adapter_config.json`` (its folder's
    savi files still saying 32) answered ``gggg`` on every document under the adapter's name, exit 0. The training
    run records the fields that decide how the adapter applies in ``savi_adapter.json``; every load compares."""
    from tests.builders import tiny_rrpo_run

    run = tiny_rrpo_run(tmp_path, tiny_llava_onevision, synthetic_samples[:2]) / "out"
    check_adapter(run, tiny_llava_onevision)  # as trained: loads
    for field, value in [("lora_alpha", 3200), ("lora_alpha", 16), ("use_rslora", True),
                         ("alpha_pattern", {"q_proj": 64}), ("older record", 3200)]:
        adapter = tmp_path / f"ad_{field}_{value}"
        shutil.copytree(run, adapter, ignore=shutil.ignore_patterns("checkpoint-*", ".*"))
        if field == "older record":  # a savi_adapter.json written before it held the fields: the run's config says
            _edit(adapter / "savi_adapter.json", lambda c: c.pop("adapter_config"))
            field = "lora_alpha"
        _edit(adapter / "adapter_config.json", lambda c: c.update({field: value}))
        with pytest.raises(AdapterFileError, match=rf"^{adapter / 'adapter_config.json'}: {field}: .*, but the run "
                                                   rf"that trained this adapter wrote "):
            check_adapter(adapter, tiny_llava_onevision)


#: each way a JSON file of a model folder lies -> (what is written, the refusal's words after the file's name)
JSON_DAMAGE = {
    "torn": ('{"do_sample": fal', ":1: invalid JSON: Expecting value at column 15"),
    "not an object": ('["eos_token_id", 2]', ": holds a JSON list, not an object"),
    "empty": ("", ":1: invalid JSON: Expecting value at column 1"),
    "broken link": (None, " is a broken symbolic link (to "),
}


@pytest.mark.parametrize("damage", sorted(JSON_DAMAGE))
@pytest.mark.parametrize("name", MODEL_JSON_FILES)
def test_a_model_json_file_that_is_there_but_unreadable_is_refused_naming_it(name, damage, tiny_llava_onevision,
                                                                            tmp_path):
    """Pass 23 F #5, #37: a torn ``generation_config.json`` was read by transformers as absent (its eos id lost:
    answers ran on, ``greengreengreeng``), exit 0; a torn ``tokenizer_config.json`` failed naming no file. GENERATED:
    every JSON file a loader reads x every way it lies, refused before anything loads (``load_backend``: training,
    generation, ``savi_video``), naming the file and, for invalid JSON, its line and column."""
    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    text, words = JSON_DAMAGE[damage]
    path = model / name
    path.unlink(missing_ok=True)
    if text is None:
        path.symlink_to(tmp_path / "gone" / name)
    else:
        path.write_text(text)
    assert _load_refusal(model).startswith(f"{model}: the model cannot be loaded: {name}{words}")


@pytest.mark.parametrize("node", ["broken link", "folder"])
def test_a_weight_file_that_is_no_file_is_named_as_what_it_is(node, tiny_llava_onevision, tmp_path):
    """Pass 23 F #54: a ``model.safetensors`` that is a dangling link was reported as "no file named
    model.safetensors" (transformers' words); it is named as the broken link it is, with its target."""
    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    weights = model / "model.safetensors"
    weights.unlink()
    if node == "broken link":
        weights.symlink_to("/nonexistent/model.safetensors")
        words = "is a broken symbolic link (to /nonexistent/model.safetensors)"
    else:
        weights.mkdir()
        words = "is a directory, not a weight file"
    assert _load_refusal(model) == f"{model}: the model cannot be loaded: model.safetensors: the model's weight file {words}"


def _template_edit(damage):
    """A change of a chat template: the question replaced by a fixed text, the video placeholder left out or
    written twice, the assistant turn's opening that ``add_generation_prompt`` asks for removed, or the assistant
    turn's content dropped."""
    import re

    video_branch = r"(\{% if part\['type'\] == 'video' %\})([^\n]*)"
    return {"question left out": lambda t: t.replace("{{ part['text'] }}", "Describe."),
            "no generation prompt": lambda t: re.sub(r"\{% if add_generation_prompt %\}.*?\{% endif %\}", "", t,
                                                     flags=re.S),
            "generation prompt opens a user turn": lambda t: re.sub(
                r"(\{% if add_generation_prompt %\})(.*?)(\{% endif %\})", r"\1<|im_start|>user\n\3", t, flags=re.S),
            "answer left out": lambda t: t.replace("{% if message['content'] is string %}",
                                                   "{% if message['role'] == 'assistant' %}"
                                                   "{% elif message['content'] is string %}"),
            "no video placeholder": lambda t: re.sub(video_branch, r"\1", t),
            "two video placeholders": lambda t: re.sub(video_branch, r"\1\2\2", t)}[damage]


@pytest.mark.parametrize("family", ["tiny_llava_onevision", "tiny_qwen2_vl", "tiny_internvl"])
@pytest.mark.parametrize("damage, words", [
    ("question left out", "chat_template.jinja leaves out the question: a user turn's text is not in the prompt"),
    ("no video placeholder", "chat_template.jinja writes 0 video placeholder(s) '"),
    ("two video placeholders", "chat_template.jinja writes 2 video placeholder(s) '"),
    ("no generation prompt", "chat_template.jinja ignores add_generation_prompt: it renders no assistant turn"),
    ("generation prompt opens a user turn", "chat_template.jinja: add_generation_prompt adds '<|im_start|>user\\n', "
                                            "which is not how it opens the assistant's turn"),
    ("answer left out", "chat_template.jinja leaves out the assistant's answer: an assistant turn's text is not")])
def test_a_chat_template_that_renders_a_prompt_without_the_question_or_video_is_refused_at_load(
        family, damage, words, request, tmp_path):
    """Pass 23 F #3: a ``chat_template.jinja`` writing ``Describe.`` in place of every text part evaluated every
    document on one prompt without its question, exit 0; #2: one without the ``<video>`` placeholder failed at the
    first document (transformers' "number of <video> tokens" error, exit 1, no file named). GENERATED: every
    family x each lie, refused at load naming the template file (the rendered prompt must hold the question and one
    placeholder per video), as a ``--prompts`` template that leaves out a field is. Pass 24 F #55: one that ignores
    ``add_generation_prompt`` (never opens the assistant turn) trained silently: refused the same way. Pass 24 R2 row
    26: one that drops the assistant's content crashed ``savi train`` with an IndexError: refused the same way.
    Pass 25 R3 #24: one whose generation prompt opens a user turn trained answers after a second user header."""
    model = tmp_path / "m"
    shutil.copytree(request.getfixturevalue(family), model)
    template = model / "chat_template.jinja"
    changed = _template_edit(damage)(template.read_text())
    assert changed != template.read_text()
    template.write_text(changed)
    assert _load_refusal(model).startswith(f"{model}: the model cannot be loaded: {words}")


@pytest.mark.parametrize("damage", ["removed", "its section removed"])
def test_a_model_without_its_processor_settings_names_the_file(damage, tiny_llava_onevision, tmp_path):
    """Pass 23 F #38: a model folder without ``processor_config.json`` failed with transformers' advice for a hub
    id ("make sure you don't have a local directory with the same name"); the folder's missing file is named."""
    model = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, model)
    settings = model / "processor_config.json"
    if damage == "removed":
        settings.unlink()
        words = f"{settings} is missing, and there is no preprocessor_config.json in its place"
    else:
        _edit(settings, lambda c: c.pop("image_processor"))
        words = f"{settings} holds no 'image_processor' section, and there is no preprocessor_config.json in its place"
    assert _load_refusal(model).startswith(f"{model}: the model cannot be loaded: its image processor cannot be built: "
                                     f"{words}")


def test_a_lying_model_folder_is_one_configuration_error_through_generate_and_savi_video(tiny_llava_onevision,
                                                                                          tmp_path, capsys):
    """The refusals above hold at the entry points: ``savi generate`` (exit 2, one line, nothing created) and
    lmms-eval's ``savi_video`` (one ``SettingError``: exit 2 in lmms-eval and ``savi eval run``)."""
    from savi_plugin.cli import main
    from savi_plugin.eval.model import SaviVideo
    from savi_plugin.eval.settings import SettingError

    torn, template = tmp_path / "torn", tmp_path / "template"
    shutil.copytree(tiny_llava_onevision, torn)
    (torn / "generation_config.json").write_text('{"do_sample": fal')
    shutil.copytree(tiny_llava_onevision, template)
    (template / "chat_template.jinja").write_text(
        _template_edit("question left out")((template / "chat_template.jinja").read_text()))
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text(json.dumps({"id": "q0", "video": "v.mp4", "question": "What?", "answer": "yes"}) + "\n")
    for model, words in [(torn, "generation_config.json:1: invalid JSON"),
                         (template, "chat_template.jinja leaves out the question")]:
        capsys.readouterr()
        code = main(["generate", "--generator", "rrpo", "--model", str(model), "--input", str(manifest),
                     "--output", str(tmp_path / "p.jsonl"), "--num-frames", "4", "--no-progress"])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert f"{model}: the model cannot be loaded: {words}" in lines[0], lines[0]
        assert list(tmp_path.glob("p.jsonl*")) == []
        with pytest.raises(SettingError, match=words):
            SaviVideo(pretrained=str(model), num_frames=4)
