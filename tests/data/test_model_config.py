"""A model's or adapter's own configuration checked against its weights before anything is built
(``savi_plugin.data.model_config``), through every load: ``load_backend`` (training, generation, ``savi_video``)
and ``check_adapter``."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from savi_plugin.data.identity import AdapterFileError, check_adapter
from savi_plugin.models import load_backend
from savi_plugin.models.backends.base import ModelLoadError


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
    with pytest.raises(ModelLoadError) as err:
        load_backend(model, num_frames=4)
    assert str(err.value).startswith(f"{model}: the model cannot be loaded: {words}"), err.value
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
