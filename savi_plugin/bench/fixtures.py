"""Inputs shared by the benchmarks: a tiny-but-deep model, a long synthetic video, one tagged pair, a LoRA adapter.

Everything is built locally (nothing is downloaded) and cached by its parameters under a work folder, so
the two sides of a comparison -- each in its own process -- load exactly the same files.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from savi_plugin.data.outputs import atomic_path, claim, replace_folder, temp_folder, write_json, write_text

#: LoRA targets of the official RRPO recipe: every linear layer of the language model (attention and MLP);
#: not the vision tower, not the projector, not the LM head (research/rrpo.md, section 3).
LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@dataclass(frozen=True)
class ModelShape:
    """Size of the benchmark model: a tiny LLaVA-OneVision (SigLIP frames, 2x2 pooling, Qwen2 language model).

    The defaults of ``None`` keep :func:`savi_plugin.models.tiny.build_tiny_model`'s values; the others rebuild
    the model from the same config with those sizes (same classes, same processor), so that the *proportions*
    of the costs that differ between two training layouts -- video prefix, vision encoder, full-vocabulary
    logits -- can be set like a real checkpoint's (see benchmarks/README.md).

    Attributes:
        hidden_size, num_layers: the language model.
        intermediate_size: the language model's MLP width (tiny default ``2 * hidden_size``; Qwen2 uses ~5.3x).
        image_size: frame size in pixels; with 8-pixel patches and 2x2 pooling a frame gives
            ``ceil(image_size / 16) ** 2`` video tokens (176 px: 121 tokens; 16 frames: 1,936 + 1 newline).
        vocab_size: the LM's vocabulary (input embeddings and LM head). The tiny tokenizer has ~560 tokens;
            larger values widen both matrices (real checkpoints also have rows the text never uses).
        vision_hidden_size, vision_layers: the SigLIP vision tower (tiny default 32 and 2; its MLP is 4x wide
            and its heads 32-dimensional when resized).
        seed: weight initialisation seed.
    """

    hidden_size: int = 256
    num_layers: int = 12
    intermediate_size: int | None = None
    image_size: int = 176
    vocab_size: int | None = None
    vision_hidden_size: int | None = None
    vision_layers: int | None = None
    seed: int = 0

    def key(self) -> str:
        return (f"h{self.hidden_size}_l{self.num_layers}_m{self.intermediate_size or 0}_i{self.image_size}"
                f"_v{self.vocab_size or 0}_vh{self.vision_hidden_size or 0}_vl{self.vision_layers or 0}_s{self.seed}")

    def resized(self) -> bool:
        return any(v is not None for v in (self.intermediate_size, self.vocab_size, self.vision_hidden_size,
                                           self.vision_layers))


def model_line(shape: dict) -> str:
    """One line describing a :class:`ModelShape` (given as a dict) for benchmark reports."""
    mlp = shape["intermediate_size"] or 2 * shape["hidden_size"]
    vision = f"{shape['vision_hidden_size'] or 32}x{shape['vision_layers'] or 2}"
    return (f"LLaVA-OneVision tiny: LM {shape['num_layers']} layers, hidden {shape['hidden_size']}, MLP {mlp}, vocab "
            f"{shape['vocab_size'] or 'tokenizer'}; SigLIP {vision}")


def video_tokens(frames: int, image_size: int, patch: int = 8) -> int:
    """Video tokens of the tiny LLaVA-OneVision: per frame ``ceil(ceil(size / patch) / 2) ** 2`` (2x2 bilinear
    pooling of the patch grid), plus one newline token per video."""
    grid = -(-image_size // patch)
    return frames * (-(-grid // 2)) ** 2 + 1


@contextlib.contextmanager
def work_folder(work_dir: str | Path | None, name: str) -> Iterator[Path]:
    """The folder a benchmark builds and caches its inputs in: ``--work-dir`` when given, claimed through the
    output layer (new, or a folder a benchmark wrote: a user's folder is refused) and kept, else a temporary folder
    of the output layer (:func:`savi_plugin.data.outputs.temp_folder`, ``$TMPDIR/.savi_bench_<name>.<pid>.*.tmp``),
    removed on every exit of the block -- a finished run, an error, Ctrl-C or SIGTERM -- and, after a SIGKILL, by
    the next benchmark of that name.

    The claim's lock is held while the folder is checked and marked; the cached inputs inside are named by their
    parameters and each is written atomically, so two benchmarks sharing a work folder reuse, not mix, them.
    """
    if work_dir is None:
        import tempfile

        with temp_folder(Path(tempfile.gettempdir()) / f"savi_bench_{name}") as tmp:
            yield tmp
        return
    with claim(work_dir, command="savi bench", folder=True, output_name="--work-dir", what="bench work folder") as c:
        c.write_mark()
    yield Path(work_dir)


def build_bench_model(work_dir: str | Path, shape: ModelShape) -> Path:
    """Build (or reuse) the benchmark checkpoint for ``shape``; returns its folder."""
    from savi_plugin.data.identity import file_identity

    out = Path(work_dir) / f"model_{shape.key()}"
    marker = out / "savi_bench.json"
    weights = out / "model.safetensors"
    try:  # reused only when its weights are still the ones it wrote (a killed or full-disk write is rebuilt)
        if json.loads(marker.read_text()) == {**asdict(shape), "weights": file_identity(weights)}:
            return out
    except (OSError, ValueError):
        pass
    with replace_folder(out) as building:  # published whole by one rename; a kill leaves only a temporary
        _build_bench_model(building, shape)
    return out


def _build_bench_model(out: Path, shape: ModelShape) -> None:
    """:func:`build_bench_model` into the empty folder ``out``, its marker written last."""
    from savi_plugin.data.identity import file_identity
    from savi_plugin.models.tiny import build_tiny_model

    weights = out / "model.safetensors"
    build_tiny_model(out, "llava_onevision", seed=shape.seed, hidden_size=shape.hidden_size,
                     num_layers=shape.num_layers, image_size=shape.image_size)
    if shape.resized():
        import torch
        from transformers import AutoConfig, GenerationConfig, LlavaOnevisionForConditionalGeneration

        config = AutoConfig.from_pretrained(str(out))
        text, vision = config.text_config, config.vision_config
        if shape.intermediate_size is not None:
            text.intermediate_size = shape.intermediate_size
        if shape.vocab_size is not None:
            if shape.vocab_size < text.vocab_size:
                raise ValueError(f"vocab_size {shape.vocab_size} is smaller than the tokenizer's {text.vocab_size}")
            text.vocab_size = shape.vocab_size
        if shape.vision_hidden_size is not None:
            vision.hidden_size = shape.vision_hidden_size
            vision.intermediate_size = 4 * shape.vision_hidden_size
            vision.num_attention_heads = max(1, shape.vision_hidden_size // 32)
        if shape.vision_layers is not None:
            vision.num_hidden_layers = shape.vision_layers
        torch.manual_seed(shape.seed)
        model = LlavaOnevisionForConditionalGeneration(config).eval()
        model.generation_config = GenerationConfig.from_pretrained(str(out))  # keep the tiny model's eos/pad
        model.save_pretrained(str(out))
    write_json(out / "savi_bench.json", {**asdict(shape), "weights": file_identity(weights)})


def make_video(work_dir: str | Path, *, num_frames: int, size: int, seed: int = 0, noise: float = 0.0,
               fps: int = 8, keyframe_interval: int | None = None) -> tuple[Path, str]:
    """Write (or reuse) a synthetic moving-shape mp4; returns ``(path, question)``.

    Args:
        num_frames, size, fps: clip length, frame width/height in pixels (even), frame rate.
        noise: standard deviation of per-pixel Gaussian noise added to every frame (0: flat synthetic
            frames). Noise gives the encoder real content to code, so decoding costs what a camera clip costs.
        keyframe_interval: H.264 GOP length in frames; None keeps libx264's default (250). Random access
            (what a uniform sample of a few frames needs) can only start at a keyframe.
    """
    import numpy as np

    from savi_plugin.video.synthetic import render_sample, write_mp4

    gop = f"_g{keyframe_interval}" if keyframe_interval else ""
    path = Path(work_dir) / f"video_{num_frames}f_{size}px_s{seed}_n{noise:g}{gop}.mp4"
    rng = np.random.default_rng(seed)
    frames, question, _, _, _ = render_sample(rng, "moving_direction", size=size, num_frames=num_frames)
    stamp = path.with_name(path.name + ".sha256")  # what this function wrote: a clip found there is reused only if
    if not (path.is_file() and stamp.is_file() and stamp.read_text().strip() == _sha256(path)):  # it is that one
        if noise > 0:
            jitter = rng.normal(0.0, noise, size=frames.shape)
            frames = np.clip(frames.astype(np.float32) + jitter, 0, 255).astype(np.uint8)
        if keyframe_interval:
            _write_h264(path, frames, fps, keyframe_interval)
        else:
            write_mp4(path, frames, fps=fps)
        write_text(stamp, _sha256(path) + "\n")
    return path, question


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_h264(path: Path, frames, fps: int, keyframe_interval: int) -> None:
    """``write_mp4`` with a fixed keyframe interval (same codec, pixel format and quality)."""
    import av
    import numpy as np

    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast", "g": str(keyframe_interval),
                          "keyint_min": str(keyframe_interval)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _words_to_tokens(tokenizer, words: list[str], count: int) -> str:
    """The shortest prefix of the cycled ``words`` whose tokenization has at least ``count`` tokens."""
    text, i = "", 0
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < count:
        text = (text + " " + words[i % len(words)]).strip()
        i += 1
    return text


def make_tagged_pair(tokenizer, response_tokens: int) -> dict[str, str]:
    """A chosen/rejected pair of about ``response_tokens`` tokens each, differing in two tagged phrases.

    Returns ``{"chosen", "rejected", "chosen_tagged", "rejected_tagged"}`` (the preference-record fields).
    """
    filler = ["the", "video", "shows", "a", "moving", "object", "then", "after", "before"]
    middle = _words_to_tokens(tokenizer, filler, max(1, response_tokens - 12))
    chosen_tagged = f"The <MASK>red circle</MASK> moves <MASK>left</MASK> and {middle}."
    rejected_tagged = f"The <MASK>blue square</MASK> moves <MASK>up</MASK> and {middle}."
    strip = re.compile(r"</?MASK>")
    return {"chosen": strip.sub("", chosen_tagged), "rejected": strip.sub("", rejected_tagged),
            "chosen_tagged": chosen_tagged, "rejected_tagged": rejected_tagged}


def lora_config(rank: int, alpha: int):
    """The benchmarks' peft ``LoraConfig``: :data:`LORA_TARGETS`, no dropout (both sides deterministic), no bias."""
    from savi_plugin.training.run import lora_config as build

    return build({"r": rank, "alpha": alpha, "dropout": 0.0, "target_modules": LORA_TARGETS})


def make_adapter(work_dir: str | Path, model_path: str | Path, *, rank: int = 16, alpha: int = 32,
                 init_std: float = 0.02, seed: int = 0) -> Path:
    """Save (or reuse) a LoRA adapter (:func:`lora_config`), with ``B ~ N(0, init_std)`` instead of peft's zeros.

    peft initialises ``B = 0``, so at step one the policy *equals* the adapter-disabled reference and every
    preference loss is ``log 2`` whatever the implementation: a useless equality check. A non-zero ``B`` makes
    the policy differ from the reference from the first step, so equal first-step losses mean the two
    implementations compute the same thing. ``init_std=0`` keeps peft's initialisation (``B = 0``): what a
    trainer that creates its own adapter (TRL with ``peft_config``) starts from.
    """
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    out = Path(work_dir) / f"adapter_{Path(model_path).name}_r{rank}_a{alpha}_std{init_std:g}_s{seed}"
    if (out / "adapter_config.json").exists():
        return out
    model = AutoModelForImageTextToText.from_pretrained(str(model_path), dtype=torch.float32)
    torch.manual_seed(seed)  # peft draws A (Kaiming-uniform) from the global generator
    peft_model = get_peft_model(model, lora_config(rank, alpha))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * init_std)
    with replace_folder(out) as building:  # a kill while saving leaves no folder that looks finished
        peft_model.save_pretrained(str(building))
    return out
