"""Pure mapping from LLaVA-NeXT's checkpoint format to transformers' LLaVA-OneVision format.

LLaVA-NeXT (github.com/LLaVA-VL/LLaVA-NeXT, ``LlavaQwenForCausalLM``) stores a Qwen2 config extended with ``mm_*``
keys and these parameter names; the right column is transformers' (>= 5) in-memory name, which
``LlavaOnevisionForConditionalGeneration.from_pretrained`` loads directly:

================================================================  ================================================
LLaVA-NeXT                                                        transformers LLaVA-OneVision
================================================================  ================================================
``model.embed_tokens.*`` / ``model.layers.*`` / ``model.norm.*``  ``model.language_model.{same}``
``lm_head.weight``                                                ``lm_head.weight``
``model.vision_tower.vision_tower.vision_model.*``                ``model.vision_tower.*``
``model.mm_projector.0.*`` / ``model.mm_projector.2.*``           ``model.multi_modal_projector.linear_{1,2}.*``
``model.image_newline``                                           ``model.image_newline``
================================================================  ================================================

Anything else (``model.faster_token``, resampler weights, a SigLIP attention-pooling head, ...) is *unmapped* and
reported by the converter; nothing is dropped silently.
"""

from __future__ import annotations

import re

#: Ordered (pattern, replacement) rules; the first match wins.
WEIGHT_RULES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"^model\.vision_tower\.vision_tower\.vision_model\.(?!head\.)(.+)$", r"model.vision_tower.\1"),
        (r"^model\.mm_projector\.0\.(weight|bias)$", r"model.multi_modal_projector.linear_1.\1"),
        (r"^model\.mm_projector\.2\.(weight|bias)$", r"model.multi_modal_projector.linear_2.\1"),
        (r"^model\.image_newline$", r"model.image_newline"),
        (r"^model\.((?:embed_tokens|layers|norm)\..+)$", r"model.language_model.\1"),
        (r"^lm_head\.weight$", r"lm_head.weight"),
    )
)

#: SigLIP towers LLaVA-NeXT checkpoints name in ``mm_vision_tower``; the *full* tower (LLaVA-NeXT drops its last
#: layer, so checkpoints hold ``num_hidden_layers - 1``). Values from the public google/siglip-so400m-patch14-384
#: config. A tower not listed here needs an explicit vision config.
KNOWN_SIGLIP_TOWERS: dict[str, dict] = {
    "google/siglip-so400m-patch14-384": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 384,
        "patch_size": 14,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    },
}

_SRC_VISION = "model.vision_tower.vision_tower.vision_model."


class ConversionError(ValueError):
    """A LLaVA-NeXT checkpoint cannot be converted faithfully; the message names the file and field."""


def map_weight_name(name: str) -> str | None:
    """transformers' name for LLaVA-NeXT parameter ``name``, or ``None`` when no rule covers it."""
    for pattern, replacement in WEIGHT_RULES:
        if pattern.match(name):
            return pattern.sub(replacement, name)
    return None


def vision_dims_from_weights(shapes: dict[str, tuple[int, ...]]) -> dict:
    """SigLIP sizes readable from the tower's weight shapes (everything except the number of heads)."""
    patch = shapes.get(_SRC_VISION + "embeddings.patch_embedding.weight")
    pos = shapes.get(_SRC_VISION + "embeddings.position_embedding.weight")
    fc1 = shapes.get(_SRC_VISION + "encoder.layers.0.mlp.fc1.weight")
    if patch is None or pos is None or fc1 is None:
        raise ConversionError(f"no SigLIP tower weights under {_SRC_VISION!r} (the converter needs the tower saved)")
    layer_ids = {
        int(m.group(1)) for k in shapes if (m := re.match(re.escape(_SRC_VISION) + r"encoder\.layers\.(\d+)\.", k))
    }
    side = int(round(pos[0] ** 0.5))
    if side * side != pos[0]:
        raise ConversionError(f"position embedding has {pos[0]} rows, not a square patch grid")
    return {
        "hidden_size": patch[0],
        "patch_size": patch[-1],
        "patches_per_side": side,  # image_size // patch_size (384 // 14 = 27: the image size is not a multiple)
        "intermediate_size": fc1[0],
        "num_hidden_layers": max(layer_ids) + 1,
    }


#: the keys of ``config.json`` LLaVA-NeXT's builder reads the vision tower's name from, the first one there wins
TOWER_KEYS = ("mm_vision_tower", "vision_tower")
#: ``model_type`` of checkpoints already in transformers' format (its LLaVA families, or what ``savi convert
#: llava-next`` writes): loaded as they are, never converted
TRANSFORMERS_TYPES = ("llava", "llava_next", "llava_next_video", "llava_onevision", "savi_llava_video")


def source_tower(src_config: dict) -> tuple[str, object]:
    """``(key, value)`` of the vision tower's name as LLaVA-NeXT reads it (:data:`TOWER_KEYS`): the first key the
    config holds, its value as written (``''`` or null when it is so); ``check_source_config`` refuses a config
    holding neither."""
    return next(((k, src_config[k]) for k in TOWER_KEYS if k in src_config), (TOWER_KEYS[0], None))


def check_source_config(src_config: dict) -> None:
    """That ``config.json`` is an original LLaVA-NeXT checkpoint's (a Qwen2 config with ``mm_*`` keys naming its
    vision tower), asked before the converter reads a weight or writes anything. A key the config lacks is said
    missing, never shown as a value: a folder already in transformers' format (``model_type`` in
    :data:`TRANSFORMERS_TYPES`, or a nested ``vision_config``) is said to be one, to be used as it is.

    Raises:
        ConversionError: ``config.json: ...`` naming the key (the converter names the file by its path).
    """
    if any(key in src_config for key in TOWER_KEYS):
        return
    model_type = src_config.get("model_type")
    if model_type in TRANSFORMERS_TYPES or "vision_config" in src_config:
        raise ConversionError(f"config.json: model_type {model_type!r} and no mm_vision_tower key: not an original "
                              f"LLaVA-NeXT checkpoint but one already in transformers' format; use it directly (as "
                              f"a model path), it needs no conversion")
    raise ConversionError(f"config.json: mm_vision_tower: missing (model_type {model_type!r}): not an original "
                          f"LLaVA-NeXT checkpoint, whose config.json names its SigLIP vision tower there")


def resolve_vision_config(src_config: dict, shapes: dict[str, tuple[int, ...]], vision_config: dict | None) -> dict:
    """The SigLIP ``vision_config`` for transformers, checked against the saved weights.

    Args:
        src_config: LLaVA-NeXT ``config.json``.
        shapes: parameter name -> shape of the source checkpoint.
        vision_config: the full tower's config (e.g. the tower's own ``config.json``); when ``None`` it is looked up
            in :data:`KNOWN_SIGLIP_TOWERS` by ``mm_vision_tower``.

    The number of layers comes from the weights (LLaVA-NeXT saves one layer fewer than the tower it names), so a
    config for either the full or the truncated tower is accepted.
    """
    check_source_config(src_config)
    key, tower = source_tower(src_config)
    if not isinstance(tower, str) or "siglip" not in tower.lower():
        raise ConversionError(f"config.json: {key}={tower!r}: only SigLIP towers are supported")
    if vision_config is None:
        vision_config = KNOWN_SIGLIP_TOWERS.get(tower)
        if vision_config is None:
            raise ConversionError(
                f"config.json: mm_vision_tower={tower!r} is not a known tower; pass its SigLIP config (--vision-config)"
            )
    if vision_config.get("model_type") == "siglip":  # a full SigLIP config: take its vision half
        vision_config = vision_config["vision_config"]
    found = vision_dims_from_weights(shapes)
    side = found.pop("patches_per_side")
    image_size = vision_config.get("image_size", side * found["patch_size"])
    if image_size // found["patch_size"] != side:
        raise ConversionError(
            f"vision config image_size={image_size} gives {image_size // found['patch_size']} patches per side but "
            f"the checkpoint's position embeddings give {side} (mm_vision_tower={tower!r})"
        )
    found["image_size"] = image_size
    for key in ("hidden_size", "intermediate_size", "patch_size"):
        if key in vision_config and vision_config[key] != found[key]:
            raise ConversionError(
                f"vision config {key}={vision_config[key]} but the checkpoint's tower weights give {found[key]} "
                f"(mm_vision_tower={tower!r}); pass the matching SigLIP config (--vision-config)"
            )
    declared = vision_config.get("num_hidden_layers")
    if declared is not None and found["num_hidden_layers"] not in (declared, declared - 1):
        raise ConversionError(
            f"vision config has {declared} layers but the checkpoint saves {found['num_hidden_layers']} "
            f"(LLaVA-NeXT saves the tower minus its last layer)"
        )
    heads = vision_config.get("num_attention_heads")
    if not heads or found["hidden_size"] % heads:
        raise ConversionError(f"vision config num_attention_heads={heads!r} does not divide {found['hidden_size']}")
    return {
        "model_type": "siglip_vision_model",
        **found,
        "num_attention_heads": heads,
        "hidden_act": vision_config.get("hidden_act", "gelu_pytorch_tanh"),
        "layer_norm_eps": vision_config.get("layer_norm_eps", 1e-6),
        "attention_dropout": vision_config.get("attention_dropout", 0.0),
        "num_channels": vision_config.get("num_channels", 3),
        "vision_use_head": False,
    }


def text_config_from(src_config: dict, vocab_size: int) -> dict:
    """Qwen2 ``text_config`` from LLaVA-NeXT's flat config (LLaVA-NeXT forces ``rope_scaling=None``)."""
    if src_config.get("model_type") not in ("llava_qwen", "qwen2"):
        raise ConversionError(
            f"config.json: model_type={src_config.get('model_type')!r}: only LLaVA-NeXT Qwen2 models (llava_qwen) "
            "are supported"
        )
    keys = (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "hidden_act", "max_position_embeddings", "rms_norm_eps", "use_sliding_window", "sliding_window",
        "max_window_layers", "attention_dropout", "bos_token_id", "eos_token_id", "initializer_range",
    )  # fmt: skip
    text = {k: src_config[k] for k in keys if k in src_config}
    text.update(
        model_type="qwen2",
        vocab_size=vocab_size,
        tie_word_embeddings=bool(src_config.get("tie_word_embeddings", False)),
        rope_parameters={"rope_type": "default", "rope_theta": float(src_config.get("rope_theta", 10000.0))},
    )
    return text


def check_text_config(text: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse a language-model config the source's weights contradict, before a model of its size is built: a
    number that is not finite (``rms_norm_eps: Infinity`` would zero every hidden state), a layer count other than
    the decoder layers the weights hold (``num_hidden_layers: 4294967295`` built layers until memory ran out), a
    width other than the embedding's.

    Raises:
        ConversionError: ``config.json: <key>: ...``.
    """
    import math

    for key, value in text.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConversionError(f"config.json: {key}: {value} is not a finite number")
    layers = {int(m.group(1)) for name in shapes if (m := re.match(r"model\.layers\.(\d+)\.", name))}
    if layers and text.get("num_hidden_layers") != len(layers):
        raise ConversionError(f"config.json: num_hidden_layers: {text.get('num_hidden_layers')!r}, but the weights "
                              f"hold {len(layers)} decoder layer(s); the config does not describe these weights")
    embed = shapes.get("model.embed_tokens.weight")
    if embed is not None and len(embed) == 2 and text.get("hidden_size") != embed[1]:
        raise ConversionError(f"config.json: hidden_size: {text.get('hidden_size')!r}, but the embedding weight is "
                              f"{embed[1]} wide; the config does not describe these weights")


def video_options_from(src_config: dict, pool_stride: int | None = None) -> tuple[dict, list[str]]:
    """LLaVA-NeXT's video-token options and the warnings they raise.

    Returns ``({"newline_position", "spatial_pool_mode", "spatial_pool_stride"}, warnings)``.

    Args:
        src_config: LLaVA-NeXT ``config.json``.
        pool_stride: override of the pooling stride. LLaVA-NeXT's video path (``prepare_inputs_labels_for_multimodal``
            -> ``get_2dPool(image_feat)``) pools with its default stride 2 whatever ``mm_spatial_pool_stride`` says,
            so 2 is the default here too.
    """
    warnings: list[str] = []
    if src_config.get("add_faster_video"):
        raise ConversionError("config.json: add_faster_video=true (slow-fast video tokens) is not supported")
    if src_config.get("mm_resampler_type") not in (None, "", "identity"):
        raise ConversionError(f"config.json: mm_resampler_type={src_config['mm_resampler_type']!r} is not supported")
    if src_config.get("mm_projector_type", "linear") != "mlp2x_gelu":
        raise ConversionError(
            f"config.json: mm_projector_type={src_config.get('mm_projector_type')!r}: only mlp2x_gelu is supported"
        )
    merge = src_config.get("mm_patch_merge_type", "flat")
    position = src_config.get("mm_newline_position", "one_token")
    if not merge.startswith("spatial"):
        newline = "none"  # "flat": frames flattened, no newline
    elif position == "no_token" or (position == "one_token" and "unpad" not in merge):
        newline = "none"
    elif position in ("grid", "frame", "one_token"):
        newline = position
    else:
        raise ConversionError(f"config.json: mm_newline_position={position!r} is not a LLaVA-NeXT value")
    mode = src_config.get("mm_spatial_pool_mode")
    if mode not in ("bilinear", "average", "max"):
        raise ConversionError(f"config.json: mm_spatial_pool_mode={mode!r}: expected bilinear, average or max")
    stride = 2 if pool_stride is None else int(pool_stride)
    declared = src_config.get("mm_spatial_pool_stride")
    if pool_stride is None and declared not in (None, 2):
        warnings.append(
            f"config.json: mm_spatial_pool_stride={declared} is ignored by LLaVA-NeXT's video path (it pools with "
            "stride 2); using 2 (pass pool_stride to override)"
        )
    return {"newline_position": newline, "spatial_pool_mode": mode, "spatial_pool_stride": stride}, warnings


def is_plain_onevision(options: dict) -> bool:
    """True when transformers' unmodified LLaVA-OneVision reproduces the video path (one newline per video)."""
    return options == {"newline_position": "one_token", "spatial_pool_mode": "bilinear", "spatial_pool_stride": 2}
