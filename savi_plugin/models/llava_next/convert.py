"""Convert a LLaVA-NeXT checkpoint (LLaVA-Video-Qwen2, LLaVA-OneVision-Qwen2) for transformers' own classes.

``convert_llava_next(src, dst)`` writes to ``dst``:

* ``config.json``: ``LlavaOnevisionConfig`` when transformers' LLaVA-OneVision reproduces the video path exactly
  (one newline per video: the original OneVision checkpoints), else ``LlavaVideoConfig``
  (model type ``savi_llava_video``, class :class:`~savi_plugin.models.llava_next.modeling.LlavaVideoForConditionalGeneration`)
  carrying LLaVA-NeXT's newline layout and pooling;
* ``model*.safetensors``: every source tensor renamed by :mod:`~savi_plugin.models.llava_next.mapping`
  (one output shard per source shard, so a 7B model never sits in memory twice);
* the tokenizer with ``<image>`` and ``<video>`` placeholders appended, and a processor (SigLIP mean/std 0.5,
  bicubic resize to the tower's size, LLaVA-NeXT's ``qwen_1_5`` chat format);
* ``conversion_report.json``: what was mapped, filled, left unmapped, and why.

Source weights that no rule maps stop the conversion (``ConversionError`` listing them) unless
``allow_unmapped=True``, in which case they are listed in the report and logged; nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from savi_plugin.data.outputs import check_distinct, claim, replace_folder, write_json
from savi_plugin.data.paths import path_for_file
from savi_plugin.models.llava_next.mapping import (
    ConversionError,
    check_source_config,
    check_text_config,
    is_plain_onevision,
    map_weight_name,
    resolve_vision_config,
    text_config_from,
    video_options_from,
)

log = logging.getLogger(__name__)

#: LLaVA-NeXT's ``qwen_1_5`` / ``qwen_2`` conversation (ChatML with the default system prompt) as a chat template;
#: a video or image item renders as its placeholder followed by a newline, like LLaVA-NeXT's ``"<image>\n" + q``.
QWEN_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'video' %}{{ '<video>\n' }}{% elif item['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"


@dataclass
class ConversionReport:
    """What :func:`convert_llava_next` did; written to ``dst/conversion_report.json``."""

    src: str
    dst: str
    model_class: str
    video_options: dict
    num_mapped: int = 0
    unmapped: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)
    vocab: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _source_shards(src: str) -> list[str]:
    """The checkpoint's weight files, in index order (safetensors preferred over pickled ``.bin``)."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = os.path.join(src, index_name)
        if os.path.exists(index):
            whole = index_name.removesuffix(".index.json")
            if os.path.exists(os.path.join(src, whole)):  # two sources of one model: which one is meant?
                raise ConversionError(f"{src}: holds both {whole} and the shard index {index_name}; a checkpoint "
                                      f"is one or the other: remove the one that is not the model")
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
                raise ConversionError(f"{index}: weight_map: expected an object of weight name -> shard file name")
            files = sorted(set(weight_map.values()))
            for name in files:  # a shard is a file of the checkpoint's own folder
                if os.path.basename(name) != name or name in ("", ".", ".."):
                    raise ConversionError(f"{index}: weight_map names {name!r}, not a file in {src}; a shard index "
                                          f"names the shard files beside it")
            return [os.path.join(src, name) for name in files]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if os.path.exists(os.path.join(src, name)):
            return [os.path.join(src, name)]
    raise ConversionError(f"{src}: no model.safetensors, pytorch_model.bin or shard index found")


def _load_shard(path: str) -> dict:
    import torch
    from safetensors.torch import load_file

    if path.endswith(".safetensors"):
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _shard_shapes(path: str) -> dict[str, tuple[int, ...]]:
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(path, "pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors' SafetensorError derives from Exception only
            text = str(exc).strip().splitlines()
            raise ConversionError(f"{path}: not a readable safetensors file ({text[0][:200] if text else type(exc).__name__}"
                                  f"); restore the source's weights") from None
    return {k: tuple(v.shape) for k, v in _load_shard(path).items()}


def _read_json(path: str) -> dict:
    from savi_plugin.data.files import read_json

    try:
        return read_json(path, lambda message, line=None: ConversionError(f"{path}{f':{line}' if line else ''}: "
                                                                          f"{message}"), strict=True)
    except FileNotFoundError:
        raise ConversionError(f"{path}: not found") from None
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{path}: not UTF-8 text: {exc}") from None


def build_processor(tokenizer, vision: dict, src_config: dict, options: dict, plain: bool):
    """LLaVA-OneVision (or :class:`LlavaVideoProcessor`) processor matching LLaVA-NeXT's preprocessing.

    LLaVA-NeXT's ``SigLipImageProcessor`` resizes to the tower size with bicubic and normalises with mean = std =
    0.5; the video processor is set up the same way.
    """
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    from savi_plugin.models.llava_next.processing import SIGLIP_MEAN, SIGLIP_STD, LlavaVideoProcessor

    size = {"height": vision["image_size"], "width": vision["image_size"]}
    pinpoints = src_config.get("image_grid_pinpoints")
    image_kwargs = {"image_grid_pinpoints": pinpoints} if isinstance(pinpoints, list) else {}
    image_processor = LlavaOnevisionImageProcessor(
        image_mean=list(SIGLIP_MEAN), image_std=list(SIGLIP_STD), size=size, **image_kwargs
    )
    video_processor = LlavaOnevisionVideoProcessor(image_mean=list(SIGLIP_MEAN), image_std=list(SIGLIP_STD), size=size)
    aspect = src_config.get("image_aspect_ratio", "")
    common = dict(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        num_image_tokens=(vision["image_size"] // vision["patch_size"]) ** 2,
        vision_feature_select_strategy="full",
        chat_template=QWEN_CHAT_TEMPLATE,
        vision_aspect_ratio=aspect if aspect.startswith("anyres_max_") else "anyres_max_9",
    )
    if plain:
        return LlavaOnevisionProcessor(**common)
    return LlavaVideoProcessor(**common, **options)


@contextlib.contextmanager
def _source_model_type_unsaid():
    """Drop transformers' notice that a ``llava_qwen`` config instantiates a config of another type (logged by
    ``AutoTokenizer.from_pretrained`` reading the source's ``config.json``, on every run, before any ``error:``
    line): reading LLaVA-NeXT's config as another type is what this converter does. Only that notice: the
    library's other records, and ours, pass at the user's log level."""
    def unsaid(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("You are using a model of type")

    library = logging.getLogger("transformers.configuration_utils")
    library.addFilter(unsaid)
    try:
        yield
    finally:
        library.removeFilter(unsaid)


@contextlib.contextmanager
def _naming(config_path: str):
    """The source's ``config.json`` named by its path in the mapping's errors (they say ``config.json: ...``, of a
    configuration given as a dict), so the line names the file the user can open."""
    try:
        yield
    except ConversionError as exc:
        text = str(exc)
        if text.startswith("config.json: "):
            raise ConversionError(f"{config_path}: {text.removeprefix('config.json: ')}") from None
        raise


def convert_llava_next(
    src: str,
    dst: str,
    *,
    vision_config: dict | str | None = None,
    dtype: str | None = None,
    pool_stride: int | None = None,
    allow_unmapped: bool = False,
    overwrite: bool = False,
    inside: str | Path | None = None,
) -> ConversionReport:
    """Convert the LLaVA-NeXT checkpoint directory ``src`` into ``dst`` (see the module docstring).

    Args:
        src: directory with LLaVA-NeXT's ``config.json``, weights and tokenizer.
        dst: output directory (created; must be empty unless ``overwrite``).
        vision_config: the SigLIP tower's config (dict or path to a ``config.json`` / directory holding one).
            Needed when ``mm_vision_tower`` is not in :data:`~savi_plugin.models.llava_next.mapping.KNOWN_SIGLIP_TOWERS`.
        dtype: output dtype ("bfloat16", "float16", "float32"); default: keep each tensor's dtype.
        inside: the marked folder of the caller's own that ``dst`` lies in by design (``savi bench gpu``'s work
            folder; :func:`~savi_plugin.data.outputs.claim`'s ``inside``).
        pool_stride: video pooling stride override (LLaVA-NeXT's video path uses 2).
        allow_unmapped: write the checkpoint even if some source weights have no target (they are reported).
        overwrite: allow a non-empty ``dst``.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from savi_plugin.models.llava_next.modeling import LlavaVideoConfig, LlavaVideoForConditionalGeneration

    config_path = os.path.join(src, "config.json")
    src_config = _read_json(config_path)
    vision_config_path = None
    if isinstance(vision_config, str):
        path = vision_config
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        vision_config = _read_json(path)
        vision_config_path = path
    inputs = {"SRC": src, "--vision-config": vision_config_path}
    # overwrite or not: DST being, holding or lying inside the source is a configuration error, said first
    check_distinct(dst, inputs, output_name="DST", folder=True)
    if os.path.isdir(dst) and os.listdir(dst) and not overwrite:
        raise ConversionError(f"{dst}: output directory is not empty (pass --overwrite, overwrite=True, to replace an "
                              f"earlier conversion)")

    with claim(dst, command="savi convert llava-next", folder=True, inputs=inputs, output_name="DST",
               replace_ours=True, lock_beside=True, inside=inside) as claimed:
        if claimed.previous is not None and not overwrite:
            raise ConversionError(f"{dst}: output directory holds an earlier conversion (pass --overwrite, "
                                  f"overwrite=True, to replace it)")
        with _naming(config_path):  # a folder already in transformers' format, before a weight is read
            check_source_config(src_config)
        shards = _source_shards(src)
        shapes: dict[str, tuple[int, ...]] = {}
        for shard in shards:
            shapes.update(_shard_shapes(shard))
        with _naming(config_path):
            vision = resolve_vision_config(src_config, shapes, vision_config)
            options, warnings = video_options_from(src_config, pool_stride)
            text_config = text_config_from(src_config, shapes.get("model.embed_tokens.weight", (0,))[0])
            check_text_config(text_config, shapes)
        plain = is_plain_onevision(options)

        # Tokenizer: LLaVA-NeXT's loader adds <im_patch> when mm_use_im_patch_token (default True) and then resizes the
        # embeddings to len(tokenizer); mirror the token so ids line up, then append the two placeholders.
        with _source_model_type_unsaid():
            tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=False)
        if src_config.get("mm_use_im_patch_token", True):
            tokenizer.add_tokens(["<im_patch>"], special_tokens=True)
        if src_config.get("mm_use_im_start_end", False):
            raise ConversionError(f"{config_path}: mm_use_im_start_end=true is not supported")
        llava_next_vocab = len(tokenizer)
        tokenizer.add_tokens([IMAGE_TOKEN, VIDEO_TOKEN], special_tokens=True)
        image_id, video_id = tokenizer.convert_tokens_to_ids([IMAGE_TOKEN, VIDEO_TOKEN])
        embed_rows = shapes.get("model.embed_tokens.weight", (0,))[0]
        vocab_size = max(embed_rows, len(tokenizer))

        tied = bool(src_config.get("tie_word_embeddings", False))
        config_cls, model_cls = (
            (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration)
            if plain
            else (LlavaVideoConfig, LlavaVideoForConditionalGeneration)
        )
        extra = {} if plain else dict(options)
        aspect = src_config.get("image_aspect_ratio", "")
        config = config_cls(
            vision_config=vision,
            text_config={**text_config, "vocab_size": vocab_size},
            image_token_index=image_id,
            video_token_index=video_id,
            projector_hidden_act="gelu",
            vision_feature_select_strategy="full",
            vision_feature_layer=-1,
            multimodal_projector_bias=True,
            tie_word_embeddings=tied,
            image_grid_pinpoints=src_config.get("image_grid_pinpoints") or None,
            vision_aspect_ratio=aspect if aspect.startswith("anyres_max_") else "anyres_max_9",
            **extra,
        )
        config.architectures = [model_cls.__name__]
        if aspect and not aspect.startswith("anyres_max_"):
            warnings.append(f"image_aspect_ratio={aspect!r}: single images follow transformers' anyres_max handling")

        with torch.device("meta"):
            target_shapes = {k: tuple(v.shape) for k, v in model_cls(config).state_dict().items()}

        report = ConversionReport(
            src=src, dst=dst, model_class=model_cls.__name__, video_options=options, warnings=warnings,
            vocab={"tokenizer": len(tokenizer), "llava_next_logits": llava_next_vocab, "embedding_rows": vocab_size,
                   "source_embedding_rows": embed_rows, "image_token_id": image_id, "video_token_id": video_id},
        )  # fmt: skip
        out_dtype = getattr(torch, dtype) if dtype else None
        with replace_folder(dst) as tmp:  # the previous conversion is replaced whole; a failure leaves it as it was
            folder = str(tmp)
            weight_map: dict[str, str] = {}
            written: set[str] = set()
            for i, shard in enumerate(shards):
                tensors = _load_shard(shard)
                out: dict[str, torch.Tensor] = {}
                for name, tensor in tensors.items():
                    target = map_weight_name(name)
                    if target is None or target not in target_shapes:
                        report.unmapped.append(name)
                        continue
                    if name in ("model.embed_tokens.weight", "lm_head.weight") and tensor.shape[0] < vocab_size:
                        # rows for the appended placeholders: mean embedding (input) / zero logit (output)
                        extra_rows = vocab_size - tensor.shape[0]
                        fill = tensor.float().mean(0, keepdim=True) if "embed" in name else torch.zeros(1, tensor.shape[1])
                        tensor = torch.cat([tensor, fill.to(tensor.dtype).expand(extra_rows, -1)])
                        report.filled.append(f"{target}: {extra_rows} row(s) appended for placeholder tokens")
                    if tuple(tensor.shape) != target_shapes[target]:
                        raise ConversionError(
                            f"{shard}: {name} has shape {tuple(tensor.shape)} but {target} needs {target_shapes[target]}"
                        )
                    out[target] = (tensor.to(out_dtype) if out_dtype is not None else tensor).contiguous()
                if not out:
                    continue
                file_name = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                save_file(out, os.path.join(folder, file_name), metadata={"format": "pt"})
                weight_map.update({k: file_name for k in out})
                written.update(out)
                report.num_mapped += len(out)
                del tensors, out

            missing = sorted(set(target_shapes) - written)
            if tied and "lm_head.weight" in missing:
                missing.remove("lm_head.weight")
                report.tied.append("lm_head.weight <- model.language_model.embed_tokens.weight")
            if "model.image_newline" in missing and options["newline_position"] == "none":
                # LLaVA-NeXT only creates image_newline for "unpad" merge types; with no newline it is never read
                missing.remove("model.image_newline")
                zeros = {"model.image_newline": torch.zeros(target_shapes["model.image_newline"], dtype=out_dtype or torch.float32)}
                save_file(zeros, os.path.join(folder, "image_newline.safetensors"), metadata={"format": "pt"})
                weight_map["model.image_newline"] = "image_newline.safetensors"
                report.filled.append("model.image_newline: zeros (unused: no newline in this video layout)")
            if missing:
                raise ConversionError(f"{src}: no source weight for {len(missing)} target parameter(s): {missing[:20]}")
            if report.unmapped:
                message = f"{src}: {len(report.unmapped)} source weight(s) have no target: {report.unmapped[:20]}"
                if not allow_unmapped:
                    raise ConversionError(message + " (pass --allow-unmapped, allow_unmapped=True, to convert anyway; "
                                                    "they are reported)")
                log.warning(message)
            if len(set(weight_map.values())) > 1:
                write_json(os.path.join(folder, "model.safetensors.index.json"),
                           {"metadata": {}, "weight_map": dict(sorted(weight_map.items()))})

            config.save_pretrained(folder)
            processor = build_processor(tokenizer, vision, src_config, options, plain)
            processor.save_pretrained(folder)
            final = os.path.join(dst, "conversion_report.json")  # where the report lies once the folder is moved
            write_json(os.path.join(folder, "conversion_report.json"),
                       {**report.to_dict(), "src": path_for_file(src, final), "dst": path_for_file(dst, final)})
            claimed.write_mark(into=tmp)
    for w in warnings:
        log.warning(w)
    log.info("converted %s -> %s (%s, %d tensors)", src, dst, model_cls.__name__, report.num_mapped)
    return report


def load_converted(path: str, *, dtype: str = "float32", device: str = "cpu"):
    """Load a converted checkpoint with the right class: ``(model, processor)``."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor

    from savi_plugin.models.llava_next.modeling import LlavaVideoForConditionalGeneration
    from savi_plugin.models.llava_next.processing import LlavaVideoProcessor

    model_type = _read_json(os.path.join(path, "config.json")).get("model_type")
    if model_type == "savi_llava_video":
        model_cls, processor_cls = LlavaVideoForConditionalGeneration, LlavaVideoProcessor
    elif model_type == "llava_onevision":
        model_cls, processor_cls = LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor
    else:
        raise ConversionError(f"{path}/config.json: model_type={model_type!r} is not a converted LLaVA-NeXT model")
    model = model_cls.from_pretrained(path, dtype=getattr(torch, dtype), trust_remote_code=False).to(device).eval()
    processor = processor_cls.from_pretrained(path, trust_remote_code=False)
    return model, processor
