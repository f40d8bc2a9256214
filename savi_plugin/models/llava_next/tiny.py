"""A tiny random checkpoint in LLaVA-NeXT's own on-disk layout (``LlavaQwenForCausalLM``).

LLaVA-Video-7B-Qwen2 and the original LLaVA-OneVision-Qwen2 checkpoints (lmms-lab) are saved by the LLaVA-NeXT code
base (github.com/LLaVA-VL/LLaVA-NeXT): a Qwen2 config extended with ``mm_*`` keys and a flat state dict in which the
SigLIP tower lives under ``model.vision_tower.vision_tower.*``, the 2-layer GELU projector under
``model.mm_projector.{0,2}.*`` and the learned newline embedding at ``model.image_newline``. This module writes the
same layout with random weights and a small byte-level BPE tokenizer built on the spot (Qwen2's pre-tokenizer), so the
converter and its proof run without any download.

Two facts of LLaVA-NeXT's loader are mirrored on purpose:

* its SigLIP tower builds the *full* tower from ``mm_vision_tower`` and then deletes the last encoder layer, so a saved
  checkpoint holds ``vision_num_layers - 1`` encoder layers (26 of so400m's 27);
* its tower hard-codes a 384-px input with 14-px patches (27 x 27 = 729 patches, asserted at run time), so the tiny
  tower keeps that geometry and shrinks only its widths and depth.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

#: Qwen2's pre-tokenisation regex (transformers ``tokenization_qwen2.PRETOKENIZE_REGEX``).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: Qwen2 chat special tokens, in the order Qwen2 numbers them (right after the BPE vocabulary).
QWEN2_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

#: Text the tiny BPE is trained on: the chat scaffolding plus the words our tests ask and answer with.
_CORPUS = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
    "What is the colour of the moving square? Describe the video. Which object moves first, left or right?",
    "The square is red and it moves from left to right. The circle is blue. A person walks in the room.",
    "Answer with the option's letter from the given choices directly. (A) red (B) green (C) blue (D) yellow",
    "yes no one two three four five frames video image shows happens after before during then",
)


@dataclass(frozen=True)
class TinyLlavaNextSpec:
    """Sizes of the tiny checkpoint. Defaults keep it under ~0.5 MB in bf16.

    Args:
        vocab_size: rows of the embedding / LM head; larger than the tokenizer (like Qwen2's 152064 vs 151646) so
            the padding rows that LLaVA-NeXT's loader trims away are present.
        bpe_vocab_size: target size of the byte-level BPE (256 byte symbols + merges) before the special tokens.
        hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads: the Qwen2 language model.
        vision_hidden_size, vision_intermediate_size, vision_heads: the SigLIP tower's widths.
        vision_num_layers: layers of the *full* tower named by ``mm_vision_tower``; the checkpoint stores one fewer.
        newline_position: LLaVA-NeXT ``mm_newline_position`` ("grid" for LLaVA-Video, "one_token" for OneVision).
        pool_mode: ``mm_spatial_pool_mode`` ("bilinear", "average" or "max").
        tie_word_embeddings: Qwen2-0.5B ties the LM head to the embeddings; 7B does not.
        weight_std: std of the random weights; large enough that a misplaced visual token changes the logits.
        seed: torch seed of the weights.
        dtype: on-disk dtype ("bfloat16" like the released checkpoints, or "float32").
    """

    vocab_size: int = 320
    bpe_vocab_size: int = 290
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64
    vision_heads: int = 2
    vision_num_layers: int = 3
    image_size: int = 384
    patch_size: int = 14
    newline_position: str = "grid"
    pool_mode: str = "bilinear"
    tie_word_embeddings: bool = False
    weight_std: float = 0.15
    seed: int = 0
    dtype: str = "bfloat16"
    vision_tower_name: str = "google/siglip-so400m-patch14-384"
    extra_config: dict = field(default_factory=dict)


def build_tiny_tokenizer(out_dir: str, bpe_vocab_size: int = 290) -> int:
    """Train and save a Qwen2-style byte-level BPE tokenizer; return its length (vocabulary + special tokens).

    Writes ``tokenizer.json``, ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` the way Qwen2
    checkpoints ship them, so both LLaVA-NeXT's loader (transformers 4.40) and transformers 5 read it.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tok.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    tok.add_special_tokens(list(QWEN2_SPECIAL_TOKENS))
    os.makedirs(out_dir, exist_ok=True)
    tokenizer_json = json.loads(tok.to_str())
    # tokenizers >= 0.20 writes merges as pairs; older readers (LLaVA-NeXT's pins) only accept "a b" strings,
    # which newer readers accept too.
    merges = tokenizer_json["model"]["merges"]
    tokenizer_json["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in merges]
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json, f, indent=2, ensure_ascii=False)
    tok.model.save(out_dir)  # vocab.json + merges.txt
    first_special = tok.token_to_id(QWEN2_SPECIAL_TOKENS[0])
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "model_max_length": 32768,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(first_special + i): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for i, t in enumerate(QWEN2_SPECIAL_TOKENS)
        },
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return tok.get_vocab_size(with_added_tokens=True)


def llava_next_config(spec: TinyLlavaNextSpec, tokenizer_len: int) -> dict:
    """The ``config.json`` LLaVA-NeXT writes for a LLaVA-Video-Qwen2 style model, with ``spec``'s sizes."""
    config = {
        "architectures": ["LlavaQwenForCausalLM"],
        "model_type": "llava_qwen",
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "eos_token_id": tokenizer_len - 1,
        "hidden_act": "silu",
        "hidden_size": spec.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": spec.intermediate_size,
        "max_position_embeddings": 32768,
        "max_window_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_hidden_layers": spec.num_layers,
        "num_key_value_heads": spec.num_kv_heads,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "use_sliding_window": False,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "torch_dtype": spec.dtype,
        "use_cache": True,
        "vocab_size": spec.vocab_size,
        # multimodal keys, as in lmms-lab/LLaVA-Video-7B-Qwen2
        "mm_vision_tower": spec.vision_tower_name,
        "vision_tower_pretrained": None,
        "mm_hidden_size": spec.vision_hidden_size,
        "mm_projector_type": "mlp2x_gelu",
        "mm_projector_lr": None,
        "mm_vision_tower_lr": 2e-6,
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_patch_merge_type": "spatial_unpad",
        "mm_newline_position": spec.newline_position,
        "mm_spatial_pool_mode": spec.pool_mode,
        "mm_spatial_pool_stride": 2,
        "mm_resampler_type": None,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_tunable_parts": "mm_vision_tower,mm_mlp_adapter,mm_language_model",
        "image_aspect_ratio": "anyres_max_9",
        "image_crop_resolution": None,
        "image_split_resolution": None,
        "image_grid_pinpoints": [[384 * i, 384 * j] for i in range(1, 7) for j in range(1, 7)],
        "add_faster_video": False,
        "faster_token_stride": 10,
        "force_sample": True,
        "frames_upbound": 64,
        "tokenizer_model_max_length": 32768,
        "tokenizer_padding_side": "right",
        "use_mm_proj": True,
        "use_pos_skipping": False,
        "transformers_version": "4.40.0.dev0",
    }
    config.update(spec.extra_config)
    return config


def tiny_state_dict(spec: TinyLlavaNextSpec) -> dict:
    """Random weights under LLaVA-NeXT's parameter names (``LlavaQwenForCausalLM.state_dict()`` keys)."""
    import torch

    gen = torch.Generator().manual_seed(spec.seed)

    def rand(*shape, std=spec.weight_std, mean=0.0):
        return torch.randn(*shape, generator=gen) * std + mean

    sd: dict[str, torch.Tensor] = {}
    h, inter, vh, vi = spec.hidden_size, spec.intermediate_size, spec.vision_hidden_size, spec.vision_intermediate_size
    head_dim = h // spec.num_heads
    kv = spec.num_kv_heads * head_dim
    sd["model.embed_tokens.weight"] = rand(spec.vocab_size, h, std=1.0)
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        sd[p + "self_attn.q_proj.weight"] = rand(h, h)
        sd[p + "self_attn.q_proj.bias"] = rand(h)
        sd[p + "self_attn.k_proj.weight"] = rand(kv, h)
        sd[p + "self_attn.k_proj.bias"] = rand(kv)
        sd[p + "self_attn.v_proj.weight"] = rand(kv, h)
        sd[p + "self_attn.v_proj.bias"] = rand(kv)
        sd[p + "self_attn.o_proj.weight"] = rand(h, h)
        sd[p + "mlp.gate_proj.weight"] = rand(inter, h)
        sd[p + "mlp.up_proj.weight"] = rand(inter, h)
        sd[p + "mlp.down_proj.weight"] = rand(h, inter)
        sd[p + "input_layernorm.weight"] = rand(h, std=0.1, mean=1.0)
        sd[p + "post_attention_layernorm.weight"] = rand(h, std=0.1, mean=1.0)
    sd["model.norm.weight"] = rand(h, std=0.1, mean=1.0)
    if not spec.tie_word_embeddings:
        sd["lm_head.weight"] = rand(spec.vocab_size, h)

    grid = spec.image_size // spec.patch_size
    v = "model.vision_tower.vision_tower.vision_model."
    sd[v + "embeddings.patch_embedding.weight"] = rand(vh, 3, spec.patch_size, spec.patch_size, std=0.05)
    sd[v + "embeddings.patch_embedding.bias"] = rand(vh)
    sd[v + "embeddings.position_embedding.weight"] = rand(grid * grid, vh)
    for i in range(spec.vision_num_layers - 1):  # LLaVA-NeXT deletes the tower's last layer before saving
        p = f"{v}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            sd[p + f"self_attn.{proj}.weight"] = rand(vh, vh)
            sd[p + f"self_attn.{proj}.bias"] = rand(vh)
        for norm in ("layer_norm1", "layer_norm2"):
            sd[p + f"{norm}.weight"] = rand(vh, std=0.1, mean=1.0)
            sd[p + f"{norm}.bias"] = rand(vh, std=0.1)
        sd[p + "mlp.fc1.weight"] = rand(vi, vh)
        sd[p + "mlp.fc1.bias"] = rand(vi)
        sd[p + "mlp.fc2.weight"] = rand(vh, vi)
        sd[p + "mlp.fc2.bias"] = rand(vh)
    # saved by LLaVA-NeXT although its features are read before this norm
    sd[v + "post_layernorm.weight"] = rand(vh, std=0.1, mean=1.0)
    sd[v + "post_layernorm.bias"] = rand(vh, std=0.1)

    sd["model.mm_projector.0.weight"] = rand(h, vh, std=0.3)
    sd["model.mm_projector.0.bias"] = rand(h)
    sd["model.mm_projector.2.weight"] = rand(h, h, std=0.3)
    sd["model.mm_projector.2.bias"] = rand(h)
    sd["model.image_newline"] = rand(h, std=1.0)
    dtype = getattr(torch, spec.dtype)
    return {k: t.to(dtype).contiguous() for k, t in sd.items()}


def siglip_vision_config(spec: TinyLlavaNextSpec) -> dict:
    """The config of the *full* tiny SigLIP tower that ``mm_vision_tower`` stands for (one layer more than saved)."""
    return {
        "model_type": "siglip_vision_model",
        "hidden_size": spec.vision_hidden_size,
        "intermediate_size": spec.vision_intermediate_size,
        "num_hidden_layers": spec.vision_num_layers,
        "num_attention_heads": spec.vision_heads,
        "num_channels": 3,
        "image_size": spec.image_size,
        "patch_size": spec.patch_size,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
        "attention_dropout": 0.0,
    }


def build_tiny_llava_next(out_dir: str, spec: TinyLlavaNextSpec | None = None) -> str:
    """Write a tiny LLaVA-NeXT-format checkpoint to ``out_dir`` and return ``out_dir``.

    Files: ``config.json`` (LLaVA-NeXT keys), ``model.safetensors`` (LLaVA-NeXT parameter names), Qwen2-style
    tokenizer files, and ``siglip_vision_config.json``: the tower's own config, which a released checkpoint does not
    carry (LLaVA-NeXT fetches it from the hub by name) and which the converter therefore takes as an argument.
    """
    from safetensors.torch import save_file

    spec = spec or TinyLlavaNextSpec()
    os.makedirs(out_dir, exist_ok=True)
    tokenizer_len = build_tiny_tokenizer(out_dir, spec.bpe_vocab_size)
    if tokenizer_len > spec.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer_len} tokens but vocab_size is {spec.vocab_size}")
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(llava_next_config(spec, tokenizer_len), f, indent=2)
    with open(os.path.join(out_dir, "siglip_vision_config.json"), "w") as f:
        json.dump(siglip_vision_config(spec), f, indent=2)
    save_file(tiny_state_dict(spec), os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    return out_dir
