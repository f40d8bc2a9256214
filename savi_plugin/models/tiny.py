"""Tiny random-weight video LMs built from transformers' own classes, for tests and the demo.

A recipe whose ``model.path`` is ``tiny://<family>`` (``tiny://llava_onevision``, ``tiny://qwen2_vl``) runs on one,
built once into the run folder by :func:`resolve_model_path`; any other path passes through unchanged.

Everything is built locally (a byte-level BPE tokenizer trained on a small corpus, the processor,
the model) and saved with ``save_pretrained``, so tests exercise the ordinary
``from_pretrained(path)`` path that real checkpoints take. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from savi_plugin.video.synthetic import COLORS, DIRECTIONS, SHAPES

#: written last into a tiny model's folder: its presence says the build finished
TINY_MARK = "savi_tiny.json"
#: the context window of every tiny model (``max_position_embeddings``)
TINY_CONTEXT = 4096

FAMILIES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl")

# The Qwen2 chat format (what LLaVA-OneVision-Qwen2 and Qwen2-VL checkpoints use), with video parts.
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}{{ VIDEO }}\n"
    "{% elif part['type'] == 'image' %}{{ IMAGE }}\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list[str]:
    words = list(COLORS) + list(SHAPES) + list(DIRECTIONS)
    text = [
        "Question: Options: Only give the best option. Answer with the option's letter from the given choices directly.",
        "The answer is (A) (B) (C) (D) (E) A. B. C. D. E. 1 2 3 4 5 6 7 8 9 0",
        "In which direction does the shape move? Which appears first? How many appear in the video?",
        "What color does it turn into? What is the color of the object? the video shows a moving object",
        "system user assistant You are a helpful assistant. Critique: the answer is wrong because the video shows",
        "Revised answer: spatial temporal reasoning error first then after before left right up down none",
        "Identify the key differences between the two sentences: objects, actions, attributes. Rewrite Sentence 1.",
    ]
    text += [" ".join(words)] * 4
    text += [f"the {c} {s} moves {d}" for c in COLORS for s in SHAPES for d in DIRECTIONS]
    return text


def build_tokenizer(vocab_size: int = 600, named_tokens: dict[str, str] | None = None):
    """A byte-level BPE fast tokenizer with Qwen2's special tokens and chat template.

    ``named_tokens`` adds special tokens that the processor finds by name on the tokenizer (transformers'
    ``extra_special_tokens``: InternVL's ``start_image_token``, ``context_image_token`` ...).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>",
                "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        unk_token=None, additional_special_tokens=specials[1:], padding_side="left",
        **({"extra_special_tokens": named_tokens} if named_tokens else {}),
    )


def build_tiny_model(out_dir: str | Path, family: str = "llava_onevision", seed: int = 0, *,
                     hidden_size: int = 64, num_layers: int = 2, image_size: int = 32) -> Path:
    """Build, save and return the path of a tiny random-weight model with its processor.

    Args:
        out_dir: where ``save_pretrained`` writes the model, tokenizer and processor.
        family: ``"llava_onevision"`` (LlavaOnevisionForConditionalGeneration, SigLIP + Qwen2),
            ``"qwen2_vl"`` (Qwen2VLForConditionalGeneration), ``"qwen2_5_vl"`` (Qwen2_5_VLForConditionalGeneration:
            window attention in the vision tower, M-RoPE with seconds per temporal patch), ``"qwen3_vl"``
            (Qwen3VLForConditionalGeneration: timestamped frames, interleaved M-RoPE, deepstack features) or
            ``"internvl"`` (InternVLForConditionalGeneration: InternViT + pixel shuffle + Qwen2, frames as images).
        seed: weight initialisation seed.
        hidden_size, num_layers: language-model size.
        image_size: vision input size in pixels (frames are resized to it).
    """
    import torch

    if family not in FAMILIES:
        raise ValueError(f"unknown tiny model family {family!r}; choose one of {', '.join(FAMILIES)}")
    from savi_plugin.data.outputs import replace_folder

    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / TINY_MARK).is_file():
        raise ValueError(f"{out_dir}: holds files and is not a finished tiny model; choose a new or empty folder")
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(named_tokens=_INTERNVL_TOKENS if family == "internvl" else None)
    builders = {"llava_onevision": _llava_onevision, "qwen2_vl": _qwen2_vl, "qwen2_5_vl": _qwen2_5_vl,
                "qwen3_vl": _qwen3_vl, "internvl": _internvl}
    model, processor = builders[family](tokenizer, hidden_size, num_layers, image_size)
    _rescale_vision_projection(model)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.do_sample = False
    with replace_folder(out_dir) as tmp:  # a kill while saving leaves a temporary folder, never a partial model
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / TINY_MARK).write_text(json.dumps({"family": family, "seed": seed}))
    return out_dir


def _rescale_vision_projection(model) -> None:
    """Give the projector from vision to language PyTorch's default (fan-in) initialisation.

    transformers initialises every linear layer with std 0.02; through two projector layers that shrinks
    the visual features to ~1% of their spread, so a tiny random model cannot tell two videos apart and no
    amount of training finds the signal in minutes. A pretrained checkpoint has a working projector;
    this gives the tiny model one at random init.
    """
    import torch

    for name, module in model.named_modules():
        if ("multi_modal_projector" in name or "merger" in name) and isinstance(module, torch.nn.Linear):
            module.reset_parameters()


def _llava_onevision(tokenizer, hidden_size: int, num_layers: int, image_size: int):
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor,
                              Qwen2Config, SiglipVisionConfig)

    patch = 8
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=image_size, patch_size=patch)
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                       num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=TINY_CONTEXT, tie_word_embeddings=False)
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full", vision_feature_layer=-1,
        image_grid_pinpoints=[[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size]],
    )
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    size = {"height": image_size, "width": image_size}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=config.image_grid_pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tokenizer,
        num_image_tokens=(image_size // patch) ** 2,
        vision_feature_select_strategy="full",
        chat_template=_CHAT_TEMPLATE.replace("{{ VIDEO }}", "<video>").replace("{{ IMAGE }}", "<image>"),
    )
    return model, processor


def _mrope_section(head_dim: int) -> list[int]:
    """Qwen2-VL splits half the rotary dims into (temporal, height, width) sections that sum to it."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _qwen2_vl(tokenizer, hidden_size: int, num_layers: int, image_size: int):
    from transformers import (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLProcessor, Qwen2VLVideoProcessor)

    head_dim = hidden_size // 4
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=TINY_CONTEXT, tie_word_embeddings=False,
                         bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id,
                         rope_parameters={"rope_type": "default", "mrope_section": _mrope_section(head_dim)}),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=hidden_size, num_heads=2, mlp_ratio=2,
                           patch_size=8, spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    pixels = image_size * image_size
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels, patch_size=8,
                                              temporal_patch_size=2, merge_size=2),
        video_processor=Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels, patch_size=8,
                                              temporal_patch_size=2, merge_size=2),
        tokenizer=tokenizer,
        chat_template=_CHAT_TEMPLATE.replace("{{ VIDEO }}", "<|vision_start|><|video_pad|><|vision_end|>")
                                    .replace("{{ IMAGE }}", "<|vision_start|><|image_pad|><|vision_end|>"),
    )
    return model, processor

SCHEME = "tiny://"


def is_tiny(path: str | Path) -> bool:
    """Whether ``path`` is a ``tiny://`` address."""
    return str(path).startswith(SCHEME)


def resolve_model_path(path: str | Path, run_dir: str | Path, seed: int = 0) -> str:
    """A loadable model path: ``tiny://<family>`` is built once into ``run_dir/models/tiny``; others unchanged.

    The folder counts as built when it holds :data:`TINY_MARK` (written last, inside the temporary folder that
    becomes it by one rename); a folder without it (a build killed part-way) is removed and built again."""
    if not is_tiny(path):
        return str(path)
    out = Path(run_dir) / "models" / "tiny"
    if not (out / TINY_MARK).is_file():
        if out.exists():  # a build stopped part-way (no mark): the run folder is ours, so build it again
            import logging

            from savi_plugin.data.outputs import remove_tree

            logging.getLogger(__name__).warning("%s: an unfinished tiny model (no %s): building it again", out,
                                                TINY_MARK)
            remove_tree(out)
        build_tiny_model(out, str(path).removeprefix(SCHEME), seed=seed)
    return str(out)


def _qwen_vl_template() -> str:
    return (_CHAT_TEMPLATE.replace("{{ VIDEO }}", "<|vision_start|><|video_pad|><|vision_end|>")
            .replace("{{ IMAGE }}", "<|vision_start|><|image_pad|><|vision_end|>"))


def _qwen_vl_token_ids(tokenizer) -> dict[str, int]:
    return {"image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
            "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
            "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
            "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>")}


def _qwen_text_config(tokenizer, hidden_size: int, num_layers: int, **rope) -> dict:
    head_dim = hidden_size // 4
    return dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=TINY_CONTEXT, tie_word_embeddings=False, bos_token_id=None,
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id,
                rope_parameters={"rope_type": "default", "mrope_section": _mrope_section(head_dim), **rope})


def _qwen2_5_vl(tokenizer, hidden_size: int, num_layers: int, image_size: int):
    """Qwen2.5-VL: the vision tower's first block attends within windows of one merged patch (window_size 16 px
    at patch 8, merge 2), its last block attends globally, as the 7B's 28 windowed / 4 full blocks do."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    config = Qwen2_5_VLConfig(
        text_config=_qwen_text_config(tokenizer, hidden_size, num_layers),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden_size,
                           patch_size=8, spatial_merge_size=2, temporal_patch_size=2, window_size=16,
                           fullatt_block_indexes=[1], tokens_per_second=2),
        **_qwen_vl_token_ids(tokenizer),
    )
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    pixels = image_size * image_size
    kwargs = dict(min_pixels=pixels, max_pixels=pixels, patch_size=8, temporal_patch_size=2, merge_size=2)
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**kwargs),
                                    video_processor=Qwen2VLVideoProcessor(**kwargs), tokenizer=tokenizer,
                                    chat_template=_qwen_vl_template())
    return model, processor


def _qwen3_vl(tokenizer, hidden_size: int, num_layers: int, image_size: int):
    """Qwen3-VL: interleaved M-RoPE, both vision blocks feed deepstack features into the first LM layers, and the
    processor writes a timestamp before each temporal patch of frames."""
    from transformers import (Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration,
                              Qwen3VLProcessor, Qwen3VLVideoProcessor)

    text = _qwen_text_config(tokenizer, hidden_size, num_layers, mrope_interleaved=True)
    text.update(head_dim=hidden_size // 4)
    for key in ("tie_word_embeddings", "bos_token_id"):
        text.pop(key)
    grid = image_size // 8
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden_size,
                           patch_size=8, spatial_merge_size=2, temporal_patch_size=2,
                           num_position_embeddings=grid * grid, deepstack_visual_indexes=[0, 1]),
        tie_word_embeddings=False,
        **_qwen_vl_token_ids(tokenizer),
    )
    model = Qwen3VLForConditionalGeneration(config).eval()
    pixels = image_size * image_size
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels, patch_size=8,
                                              temporal_patch_size=2, merge_size=2),
        # the size bounds count pixels over the whole clip (frames x height x width): 4 frames of image_size
        video_processor=Qwen3VLVideoProcessor(size={"shortest_edge": 2 * pixels, "longest_edge": 4 * pixels},
                                              patch_size=8, temporal_patch_size=2, merge_size=2),
        tokenizer=tokenizer, chat_template=_qwen_vl_template())
    return model, processor


#: InternVL's processor finds its image tokens by these names on the tokenizer (as the -hf checkpoints name them).
_INTERNVL_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
                    "video_token": "<video>"}


def _internvl(tokenizer, hidden_size: int, num_layers: int, image_size: int):
    """InternVL (2.5 / 3 in transformers' format): InternViT, pixel shuffle 0.5, a LayerNorm + 2-layer MLP
    projector, Qwen2; every frame is an image of ``image_seq_length`` context tokens between ``<img>`` and
    ``</img>``, after ``FrameN:``."""
    from transformers import (GotOcr2ImageProcessor, InternVLConfig, InternVLForConditionalGeneration,
                              InternVLProcessor, InternVLVideoProcessor, InternVLVisionConfig, Qwen2Config)

    patch = 8
    vision = InternVLVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=[image_size, image_size], patch_size=[patch, patch])
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                       num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=TINY_CONTEXT, tie_word_embeddings=False)
    seq_length = (image_size // patch) ** 2 // 4  # pixel shuffle 0.5 halves each side
    config = InternVLConfig(vision_config=vision, text_config=text, image_seq_length=seq_length,
                            image_token_id=tokenizer.context_image_token_id, tie_word_embeddings=False)
    model = InternVLForConditionalGeneration(config).eval()
    size = {"height": image_size, "width": image_size}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer, image_seq_length=seq_length,
        chat_template=_CHAT_TEMPLATE.replace("{{ VIDEO }}", "<video>").replace("{{ IMAGE }}", "<image>"))
    return model, processor
