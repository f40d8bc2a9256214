"""``savi convert llava-next``: the weight map, token counts, and the converter's refusals and reports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from savi_plugin.models.llava_next.convert import convert_llava_next, load_converted
from savi_plugin.models.llava_next.mapping import ConversionError, map_weight_name
from savi_plugin.models.llava_next.modeling import num_video_tokens
from savi_plugin.models.llava_next.tiny import TinyLlavaNextSpec, build_tiny_llava_next
from tests.builders import LLAVA_NEXT_FIXTURE

SOURCE = LLAVA_NEXT_FIXTURE / "source"
VISION_CONFIG = str(SOURCE / "siglip_vision_config.json")


def _copy_source(tmp_path: Path, **config_changes) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SOURCE, src)
    if config_changes:
        config = json.loads((src / "config.json").read_text())
        config.update(config_changes)
        (src / "config.json").write_text(json.dumps(config))
    return src


def test_every_llava_next_weight_name_has_a_transformers_name():
    names = load_file(str(SOURCE / "model.safetensors")).keys()
    mapped = {n: map_weight_name(n) for n in names}
    assert all(mapped.values()), [n for n, t in mapped.items() if t is None]
    assert len(set(mapped.values())) == len(mapped)  # no two sources land on one target
    assert mapped["model.mm_projector.2.bias"] == "model.multi_modal_projector.linear_2.bias"
    assert mapped["model.layers.1.mlp.up_proj.weight"] == "model.language_model.layers.1.mlp.up_proj.weight"
    assert (mapped["model.vision_tower.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight"]
            == "model.vision_tower.encoder.layers.0.self_attn.q_proj.weight")
    for unknown in ("model.faster_token", "model.vision_tower.vision_tower.vision_model.head.probe",
                    "model.vision_resampler.mm_projector.weight"):
        assert map_weight_name(unknown) is None


@pytest.mark.parametrize(
    "frames, mode, newline, expected",
    [(1, "bilinear", "grid", 14 * 15),          # LLaVA-Video at 384 px: 210 per frame
     (32, "bilinear", "grid", 32 * 210),
     (32, "bilinear", "one_token", 32 * 196 + 1),  # LLaVA-OneVision
     (4, "average", "grid", 4 * 13 * 14),      # average pooling rounds 27 / 2 down
     (4, "bilinear", "frame", 4 * 197),
     (4, "max", "none", 4 * 169)],
)
def test_video_token_counts(frames, mode, newline, expected):
    assert num_video_tokens(frames, 27, 2, mode, newline) == expected


def test_converted_checkpoint_maps_every_weight_and_keeps_the_values(tmp_path):
    dst = tmp_path / "out"
    report = convert_llava_next(str(SOURCE), str(dst), vision_config=VISION_CONFIG)
    source = load_file(str(SOURCE / "model.safetensors"))
    written = load_file(str(dst / "model.safetensors"))
    assert report.num_mapped == len(source) == len(written) and not report.unmapped
    assert report.model_class == "LlavaVideoForConditionalGeneration"
    assert report.video_options == {"newline_position": "grid", "spatial_pool_mode": "bilinear", "spatial_pool_stride": 2}
    for name, tensor in source.items():
        assert torch.equal(written[map_weight_name(name)], tensor), name  # renamed, not altered (bf16 kept)
    assert report.vocab["tokenizer"] == 295 and report.vocab["embedding_rows"] == 320
    saved = json.loads((dst / "conversion_report.json").read_text())
    assert saved["num_mapped"] == len(source)

    model, processor = load_converted(str(dst))
    assert model.config.video_token_index == processor.tokenizer.convert_tokens_to_ids("<video>") == 294
    assert model.config.vision_config.num_hidden_layers == 2  # the tower LLaVA-NeXT kept, minus its last layer
    assert list(processor.video_processor.image_mean) == list(processor.video_processor.image_std) == [0.5] * 3


def test_unmapped_weights_stop_the_conversion_or_are_reported(tmp_path):
    src = _copy_source(tmp_path)
    weights = load_file(str(src / "model.safetensors"))
    weights["model.faster_token"] = torch.zeros(64, dtype=torch.bfloat16)
    save_file(weights, str(src / "model.safetensors"), metadata={"format": "pt"})

    with pytest.raises(ConversionError, match="model.faster_token"):
        convert_llava_next(str(src), str(tmp_path / "a"), vision_config=VISION_CONFIG)
    report = convert_llava_next(str(src), str(tmp_path / "b"), vision_config=VISION_CONFIG, allow_unmapped=True)
    assert report.unmapped == ["model.faster_token"]
    assert json.loads((tmp_path / "b" / "conversion_report.json").read_text())["unmapped"] == ["model.faster_token"]
    load_converted(str(tmp_path / "b"))  # still a complete model


def test_vision_config_must_match_the_tower_weights(tmp_path):
    # the tiny checkpoint names so400m, whose known config (1152 wide) does not fit its 32-wide tower
    with pytest.raises(ConversionError, match="hidden_size=1152"):
        convert_llava_next(str(SOURCE), str(tmp_path / "a"))
    src = _copy_source(tmp_path, mm_vision_tower="acme/siglip-custom")
    with pytest.raises(ConversionError, match="--vision-config"):
        convert_llava_next(str(src), str(tmp_path / "b"))
    bad = json.loads(Path(VISION_CONFIG).read_text()) | {"num_attention_heads": 3}
    with pytest.raises(ConversionError, match="num_attention_heads=3"):
        convert_llava_next(str(SOURCE), str(tmp_path / "c"), vision_config=bad)


@pytest.mark.parametrize(
    "changes, message",
    [({"add_faster_video": True}, "add_faster_video"),
     ({"mm_projector_type": "linear"}, "mm_projector_type"),
     ({"mm_vision_tower": "openai/clip-vit-large-patch14-336"}, "only SigLIP"),
     ({"mm_spatial_pool_mode": "nearest"}, "mm_spatial_pool_mode"),
     ({"mm_newline_position": "diagonal"}, "mm_newline_position"),
     ({"model_type": "llava_onevision"}, "only LLaVA-NeXT Qwen2 models")],
)
def test_unsupported_configs_are_refused_with_the_field_named(tmp_path, changes, message):
    src = _copy_source(tmp_path, **changes)
    with pytest.raises(ConversionError, match=message) as err:
        convert_llava_next(str(src), str(tmp_path / "out"), vision_config=VISION_CONFIG)
    assert str(err.value).startswith(f"{src}/config.json: "), str(err.value)  # the file, by its path (pass 15 A #51)


@pytest.mark.parametrize("changes, message", [
    # pass 18 C #24: layers were built until memory ran out (5.4 GB after 9 minutes)
    ({"num_hidden_layers": 4294967295}, "num_hidden_layers: 4294967295, but the weights hold 2 decoder layer(s)"),
    ({"num_hidden_layers": 1}, "num_hidden_layers: 1, but the weights hold 2 decoder layer(s)"),
    ({"hidden_size": 1e30}, "hidden_size: 1e+30, but the embedding weight is"),
])
def test_a_config_the_weights_contradict_is_refused_before_a_model_is_built(tmp_path, changes, message):
    src = _copy_source(tmp_path, **changes)
    with pytest.raises(ConversionError, match=re.escape(message)) as err:
        convert_llava_next(str(src), str(tmp_path / "out"), vision_config=VISION_CONFIG)
    assert str(err.value).startswith(f"{src}/config.json: "), str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("literal", ["Infinity", "NaN", "-Infinity"])
def test_a_non_finite_number_in_the_source_config_is_refused_at_its_line(tmp_path, literal):
    """Pass 18 C #25: ``rms_norm_eps: Infinity`` was carried into the converted config, which savi_video then
    loaded and scored with (every hidden state ~0)."""
    src = _copy_source(tmp_path)
    text = (src / "config.json").read_text()
    (src / "config.json").write_text(re.sub(r'"rms_norm_eps": [^,}]+', f'"rms_norm_eps": {literal}', text))
    with pytest.raises(ConversionError, match=rf"^{re.escape(str(src))}/config.json:\d+: .*{literal}"):
        convert_llava_next(str(src), str(tmp_path / "out"), vision_config=VISION_CONFIG)
    assert not (tmp_path / "out").exists()


def test_a_weight_file_whose_header_lies_is_named(tmp_path):
    """Pass 18 C #22: a safetensors header whose offsets run past the file ended as an "unexpected"
    SafetensorError naming no file."""
    import struct

    src = _copy_source(tmp_path)
    weights = src / "model.safetensors"
    data = weights.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"] = [0, 10**12]
    encoded = json.dumps(header).encode()
    weights.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size:])
    with pytest.raises(ConversionError, match=rf"^{re.escape(str(weights))}: not a readable safetensors file"):
        convert_llava_next(str(src), str(tmp_path / "out"), vision_config=VISION_CONFIG)


def test_tied_embeddings_and_average_pooling(tmp_path):
    """A 0.5B-style checkpoint (tied LM head, no lm_head.weight saved) with average pooling and frame newlines."""
    spec = TinyLlavaNextSpec(tie_word_embeddings=True, pool_mode="average", newline_position="frame", seed=3)
    src = build_tiny_llava_next(str(tmp_path / "src"), spec)
    report = convert_llava_next(src, str(tmp_path / "out"), vision_config=f"{src}/siglip_vision_config.json")
    assert report.tied and report.video_options["spatial_pool_mode"] == "average"
    model, processor = load_converted(str(tmp_path / "out"))
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
    import numpy as np

    video = np.zeros((3, 384, 384, 3), dtype=np.uint8)
    inputs = processor(text=["<video>\nhi"], videos=[video], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.video_token_index).sum()) == 3 * (13 * 13 + 1)
    with torch.no_grad():
        assert model(**inputs).logits.isfinite().all()


def test_mm_spatial_pool_stride_other_than_two_is_warned_about(tmp_path):
    src = _copy_source(tmp_path, mm_spatial_pool_stride=4)
    report = convert_llava_next(str(src), str(tmp_path / "out"), vision_config=VISION_CONFIG)
    assert report.video_options["spatial_pool_stride"] == 2
    assert any("mm_spatial_pool_stride=4" in w for w in report.warnings)


def test_cli_converts_and_reports_errors(tmp_path, capsys):
    from savi_plugin.cli import main

    dst = tmp_path / "out"
    assert main(["convert", "llava-next", str(SOURCE), str(dst), "--vision-config", VISION_CONFIG]) == 0
    assert "LlavaVideoForConditionalGeneration" in capsys.readouterr().out
    assert (dst / "model.safetensors").is_file() and (dst / "processor_config.json").is_file()
    assert main(["convert", "llava-next", str(SOURCE), str(dst), "--vision-config", VISION_CONFIG]) == 1
    assert "not empty" in capsys.readouterr().err


def test_real_llava_video_7b_geometry_resolves_from_the_known_tower():
    """Shapes of lmms-lab/LLaVA-Video-7B-Qwen2's tower (26 of so400m's 27 layers saved) need no vision config."""
    from savi_plugin.models.llava_next.mapping import resolve_vision_config

    v = "model.vision_tower.vision_tower.vision_model."
    shapes = {v + "embeddings.patch_embedding.weight": (1152, 3, 14, 14),
              v + "embeddings.position_embedding.weight": (729, 1152),
              **{v + f"encoder.layers.{i}.mlp.fc1.weight": (4304, 1152) for i in range(26)}}
    vision = resolve_vision_config({"mm_vision_tower": "google/siglip-so400m-patch14-384"}, shapes, None)
    assert (vision["num_hidden_layers"], vision["image_size"], vision["num_attention_heads"]) == (26, 384, 16)
    assert num_video_tokens(64, vision["image_size"] // vision["patch_size"], 2, "bilinear", "grid") == 64 * 210


def _sharded(tmp_path):
    src = _copy_source(tmp_path)
    weights = load_file(str(src / "model.safetensors"))
    (src / "model.safetensors").unlink()
    names = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file_name, keys in shards.items():
        save_file({k: weights[k] for k in keys}, str(src / file_name), metadata={"format": "pt"})
    return src, {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}


def test_sharded_source_gives_the_same_model(tmp_path):
    """7B checkpoints come in shards with an index; one output shard per input shard, same tensors."""
    weights = load_file(str(SOURCE / "model.safetensors"))
    src, index = _sharded(tmp_path)
    (src / "model.safetensors.index.json").write_text(json.dumps(index))

    report = convert_llava_next(str(src), str(tmp_path / "out"), vision_config=VISION_CONFIG)
    assert report.num_mapped == len(weights)
    out_index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(out_index) == len(weights) and len(set(out_index.values())) == 2
    model, _ = load_converted(str(tmp_path / "out"))
    name = "model.layers.1.self_attn.o_proj.weight"
    assert torch.equal(model.state_dict()[map_weight_name(name)], weights[name].float())


@pytest.mark.parametrize("lie, words", [
    # pass 19 B N8: "AttributeError: 'list' object has no attribute 'values' (unexpected ...)"
    ("a list", "weight_map: expected an object of weight name -> shard file name"),
    # pass 19 B N9: weights were read from a file outside the source folder, exit 0
    ("outside", "weight_map names '../outside.safetensors', not a file in"),
    # pass 19 B N10: the shards were used and a whole model.safetensors beside them ignored with no word
    ("both", "holds both model.safetensors and the shard index model.safetensors.index.json"),
])
def test_a_shard_index_that_lies_is_refused_naming_it(lie, words, tmp_path):
    src, index = _sharded(tmp_path)
    if lie == "a list":
        index["weight_map"] = sorted(index["weight_map"].items())
    elif lie == "outside":
        shutil.move(str(src / "model-00002-of-00002.safetensors"), str(tmp_path / "outside.safetensors"))
        index["weight_map"] = {k: ("../outside.safetensors" if v.startswith("model-00002") else v)
                               for k, v in index["weight_map"].items()}
    else:
        shutil.copyfile(src / "model-00001-of-00002.safetensors", src / "model.safetensors")
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConversionError, match=re.escape(words)):
        convert_llava_next(str(src), str(tmp_path / "out"), vision_config=VISION_CONFIG)
    assert not (tmp_path / "out").exists()


def test_the_conversion_report_stores_its_paths_relative_to_itself(tmp_path, monkeypatch):
    """README "Paths, everywhere": src and dst were stored as typed, relative to the working folder (red team 6)."""
    from tests.test_paths_relative import every_json_stores_paths_by_the_rule

    shutil.copytree(SOURCE, tmp_path / "src")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    convert_llava_next("../src", "out/conv", vision_config=VISION_CONFIG)
    every_json_stores_paths_by_the_rule(tmp_path / "work" / "out" / "conv", "conversion_report.json")
    saved = json.loads((tmp_path / "work" / "out" / "conv" / "conversion_report.json").read_text())
    assert saved["dst"] == "." and saved["src"] == str(tmp_path / "src")


def test_the_refusals_name_the_command_line_flags(tmp_path):
    """Pass 17 A #28: the lines advised ``allow_unmapped=True`` and ``overwrite=True``, keyword arguments a user of
    ``savi convert`` cannot pass; they name ``--allow-unmapped`` and ``--overwrite`` too."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(ConversionError, match="pass --overwrite, overwrite=True, to replace"):
        convert_llava_next(str(SOURCE), str(out), vision_config=VISION_CONFIG)


#: sources that are no original LLaVA-NeXT checkpoint, as (how the folder is made, the line's start after its path)
NOT_LLAVA_NEXT = {
    "a transformers LLaVA-OneVision": ("onevision", "model_type 'llava_onevision' and no mm_vision_tower key: not an "
                                                    "original LLaVA-NeXT checkpoint but one already in transformers' "
                                                    "format; use it directly"),
    "a conversion's output": ("converted", "model_type 'savi_llava_video' and no mm_vision_tower key: not an "
                                           "original LLaVA-NeXT checkpoint but one already in transformers' format"),
    "model_type llava, no tower key": ({"model_type": "llava", "mm_vision_tower": None},
                                       "model_type 'llava' and no mm_vision_tower key: not an original LLaVA-NeXT"),
    "no tower key": ({"mm_vision_tower": None}, "mm_vision_tower: missing (model_type 'llava_qwen'): not an "
                                                "original LLaVA-NeXT checkpoint"),
    "an empty tower": ({"mm_vision_tower": ""}, "mm_vision_tower='': only SigLIP towers are supported"),
}


@pytest.mark.parametrize("what", NOT_LLAVA_NEXT)
def test_a_source_that_is_no_llava_next_checkpoint_is_said_as_what_it_is(what, tmp_path, capsys, request):
    """Pass 24 H #71: a transformers LLaVA-OneVision folder given as SRC was refused with ``mm_vision_tower='':
    only SigLIP towers are supported``, as if the key were there and empty. A folder already in transformers'
    format is said to be one (its model_type, the key it lacks); a missing key is "missing", never ''."""
    from savi_plugin.cli import main

    how, said = NOT_LLAVA_NEXT[what]
    if how == "onevision":
        src = request.getfixturevalue("tiny_llava_onevision")
    elif how == "converted":
        src = request.getfixturevalue("tiny_llava_video")
    else:
        src = _copy_source(tmp_path)
        config = json.loads((src / "config.json").read_text())
        config.update({k: v for k, v in how.items() if v is not None})
        for key in (k for k, v in how.items() if v is None):
            del config[key]
        (src / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["convert", "llava-next", str(src), str(tmp_path / "out"), "--vision-config", VISION_CONFIG]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {src}/config.json: {said}"), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("outcome", ["converted", "refused"])
def test_transformers_notice_of_the_source_model_type_is_not_printed(outcome, tmp_path, capsys, caplog):
    """Pass 25 L #33: every run printed transformers' ``You are using a model of type llava_qwen to instantiate a
    model of type ...`` (reading the source's config is the conversion), also before an ``error:`` line."""
    import transformers.utils.logging  # noqa: F401 (loaded, so its records are routed as every command routes them)

    from savi_plugin.cli import main, route_library_logs

    route_library_logs()
    src = _copy_source(tmp_path)
    if outcome == "refused":  # a weight no rule maps: refused after the source's config and tokenizer are read
        weights = load_file(str(src / "model.safetensors"))
        weights["model.faster_token"] = torch.zeros(64, dtype=torch.bfloat16)
        save_file(weights, str(src / "model.safetensors"), metadata={"format": "pt"})
    with caplog.at_level("INFO"):
        code = main(["convert", "llava-next", str(src), str(tmp_path / "out"), "--vision-config", VISION_CONFIG])
    said = capsys.readouterr()
    assert not [r for r in caplog.records if "You are using a model of type" in r.getMessage()], caplog.text
    assert code == (0 if outcome == "converted" else 1), said
    assert "You are using a model of type" not in said.out + said.err, said.err
    if outcome == "converted":
        assert '"model_class"' in said.out, said.out  # and our own line, at the log level asked for
        assert [r for r in caplog.records if r.name.startswith("savi_plugin") and "converted" in r.getMessage()]
    else:
        assert "error: " in said.err and "model.faster_token" in said.err, said.err
