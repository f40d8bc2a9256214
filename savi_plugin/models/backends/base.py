"""The backend adapter: the one place that knows how a model family turns frames + text into inputs.

Everything above this layer (generators, trainers, the lmms-eval wrapper) talks to a :class:`VideoLM`
and never to a processor directly, so adding a model family means adding one backend.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
import torch

from savi_plugin import registry
from savi_plugin.constants import DEFAULT_NUM_FRAMES, DTYPE_ALIASES
from savi_plugin.constants import DTYPES as DTYPE_NAMES
from savi_plugin.errors import ConfigurationError, InputError
from savi_plugin.models.backends.tokens import answer_text, check_plain_text, tokenize_response

log = logging.getLogger(__name__)

#: dtype name (or its short alias) -> torch dtype
DTYPES = {**{name: getattr(torch, name) for name in DTYPE_NAMES},
          **{alias: getattr(torch, name) for alias, name in DTYPE_ALIASES.items()}}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16`` ... -> a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


class PromptTooLongError(InputError):
    """A prompt (video + question) does not fit the model's context window.

    Prompts are never truncated -- the video tokens must match the vision features one to one, and a cut
    question is a different question -- so the item is refused; generation counts it as a skip with reason
    :attr:`skip_reason`.
    """

    skip_reason = "prompt_too_long"


class VideoLM:
    """A loaded video language model with its processor.

    Subclasses set :attr:`family` and :attr:`model_types` (the ``config.model_type`` values they serve)
    and may override :meth:`messages` and :meth:`processor_kwargs`.

    Args:
        model: a transformers model (optionally wrapped by peft).
        processor: its processor (tokenizer + video processor + chat template).
        num_frames: frames per video the callers should decode (the model itself takes any count).
    """

    family: ClassVar[str] = "base"
    #: generate() prefills each video's prompt prefix once and reuses its key-value cache (models/prefix_cache.py)
    reuse_prefixes: bool = True
    #: the PrefixStore of an open ``prefix_cache.reuse_video_prefixes(lm)`` block, else None
    prefix_store = None
    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model, processor, *, num_frames: int = DEFAULT_NUM_FRAMES, name_or_path: str = ""):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.num_frames = num_frames
        self.name_or_path = name_or_path

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, path: str | Path, *, adapter: str | Path | None = None, dtype: str = "float32",
                        device: str = "cpu", num_frames: int = DEFAULT_NUM_FRAMES, trust_remote_code: bool = False,
                        attn_implementation: str | None = None, is_trainable: bool = False) -> "VideoLM":
        """Load a checkpoint (and optionally a peft LoRA adapter) from a local path or hub id.

        Args:
            path: model directory (or hub id, where the machine has network access).
            adapter: a peft adapter directory saved by our trainer, applied on top.
            dtype: ``float32`` / ``bfloat16`` / ``float16``.
            device: ``cpu``, ``cuda``, ``cuda:1`` ...
            num_frames: frames per video callers decode (VideoSAVi: 32; RRPO: 16 or 32).
            trust_remote_code: passed to transformers; off unless the user asks.
            attn_implementation: e.g. ``sdpa`` or ``flash_attention_2``; transformers' default if None.
            is_trainable: load the adapter with trainable weights (to continue training it).
        """
        from transformers import AutoProcessor

        if adapter is not None:  # another base, a torn record, damaged weights: one line before any loading
            from savi_plugin.data.identity import check_adapter

            check_adapter(adapter, path)
        kwargs: dict[str, Any] = {"dtype": resolve_dtype(dtype), "trust_remote_code": trust_remote_code}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        with model_files_read(path):
            processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
            import_model_classes(str(path), trust_remote_code=trust_remote_code)
            with _held_load_report() as report:
                model, info = cls.load_model(str(path), output_loading_info=True, **kwargs)
        _check_loading_info(path, info, report)
        check_tokenizer_fits(path, model, processor.tokenizer, processor)
        lm = cls(model, processor, num_frames=num_frames, name_or_path=str(path))
        check_processor_fits(path, model, processor, lm.messages)
        if adapter is not None:
            import warnings

            from peft import PeftModel

            with model_files_read(adapter, "adapter"), warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                model = PeftModel.from_pretrained(model, str(adapter), is_trainable=is_trainable)
            for warning in said:  # peft only warns when the adapter's file lacks weights its config asks for
                if "missing adapter keys" in str(warning.message):
                    count = str(warning.message).count("'")// 2
                    raise ModelLoadError(f"{adapter}: the adapter cannot be loaded: its weight file lacks {count} "
                                         f"tensor(s) its config asks for (peft would leave them as initialised, "
                                         f"the adapter not applied as trained); restore the adapter's files")
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            _check_adapter_placed(adapter, model)
        model.to(device)
        own_memory(model)
        if not is_trainable:
            model.eval()
        lm.model = model
        return lm

    @classmethod
    def load_model(cls, path: str, **kwargs):
        """The model class to load; the generic image-text-to-text auto class by default."""
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText.from_pretrained(path, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int | None:
        """The language model's context window (``max_position_embeddings``), or None when the config has none."""
        config = self.model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        value = getattr(text, "max_position_embeddings", None)
        return int(value) if value else None

    def check_context(self, attention_mask: torch.Tensor, max_new_tokens: int) -> None:
        """Raise :class:`PromptTooLongError` if a prompt plus ``max_new_tokens`` exceeds :attr:`context_length`,
        and a :class:`ConfigurationError` if ``max_new_tokens`` alone fills it (every item would fail).

        Without this check a RoPE model silently generates past the positions it was trained on.
        """
        limit = self.context_length
        if limit is None:
            return
        if max_new_tokens >= limit:  # no prompt can fit: the setting is wrong, not one item
            raise ConfigurationError(f"max_new_tokens={max_new_tokens} is not below the model's context window of "
                                     f"{limit} tokens ({self.name_or_path}/config.json: max_position_embeddings), "
                                     f"so no prompt fits; lower max_new_tokens, or check the model's config.json")
        for index, length in enumerate(attention_mask.sum(-1).tolist()):
            if length + max_new_tokens > limit:
                raise PromptTooLongError(
                    f"prompt {index} of the batch is {int(length)} tokens; with max_new_tokens={max_new_tokens} it "
                    f"exceeds the model's context window of {limit} tokens (prompts are never truncated: lower "
                    f"max_new_tokens or num_frames, or shorten the question)")

    # ----------------------------------------------------------------- prompts
    def messages(self, question: str, response: str | None = None, *, system: str | None = None) -> list[dict]:
        """The chat turns for one video question (and optionally its answer), after an optional system turn.

        Every part is a ``{"type": ..., ...}`` item, the content form transformers' multimodal chat templates
        take for every role (``docs/source/en/chat_templating_multimodal.md``; LLaVA-OneVision's template reads
        only lists). A template that writes a default system turn (Qwen2-VL, LLaVA-NeXT's ``qwen_2``) writes
        ``system`` in its place.
        """
        turns = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
        turns.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]})
        if response is not None:
            turns.append({"role": "assistant", "content": [{"type": "text", "text": response}]})
        return turns

    def prompt(self, question: str, *, system: str | None = None, prefill: str = "") -> str:
        """The chat-formatted prompt, ending with the generation prompt for the assistant turn, then ``prefill``.

        Args:
            question: the user's text (the video placeholder comes before it).
            system: text of a system turn before the user turn; None or ``""``: the template's default.
            prefill: the start of the assistant's reply, written after the generation prompt so that the model
                continues it (MVBench's official evaluation pre-fills ``"Best option:("``, OpenGVLab/Ask-Anything
                ``video_chat2/mvbench.ipynb`` ``answer_prompt``).
        """
        check_plain_text(self.tokenizer, question, "question")  # the tokenizer's control strings (tokens.py)
        rendered = self.processor.apply_chat_template(self.messages(question, system=system),
                                                      add_generation_prompt=True, tokenize=False)
        return rendered + prefill

    @cached_property
    def end_of_turn(self) -> str:
        """The text the chat template puts right after an assistant answer (e.g. ``<|im_end|>``).

        Found by rendering a turn with a marker answer, so it follows whatever template the checkpoint ships.
        Trailing newlines are not part of it: the model stops at the end-of-turn token.
        """
        return template_end_of_turn(self.name_or_path, self.processor, self.messages)

    def processor_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for the processor call (family-specific)."""
        return {}

    # ----------------------------------------------------------------- inputs
    def _process(self, texts: list[str], videos: Sequence[np.ndarray], **extra):
        """The processor over prompts and their videos (left-padded); ``extra``: per-call processor arguments."""
        if len(texts) != len(videos):
            raise ValueError(f"got {len(texts)} prompts but {len(videos)} videos")
        # frames are (T, H, W, 3) as every decoder gives them; handed over channels-first and said so: a frame 3 or
        # 1 pixels high would be guessed channels-first as (T, 3, W, 3) (its rows read as colours, a scrambled
        # frame), and transformers' guesses elsewhere in the call (it warns "ambiguous") see channels first too
        frames = [np.ascontiguousarray(np.asarray(video).transpose(0, 3, 1, 2)) for video in videos]
        return self.processor(text=texts, videos=frames, return_tensors="pt", padding=True, padding_side="left",
                              input_data_format="channels_first", **self.processor_kwargs(), **extra)

    def encode(self, videos: Sequence[np.ndarray], questions: Sequence[str]) -> dict[str, Any]:
        """Model inputs of the prompts (chat template, video placeholders, pixels), left-padded for ``generate``.

        Prompt + response rows are built from these by :mod:`savi_plugin.training.batch` (the one way).
        """
        return dict(self._process([self.prompt(q) for q in questions], videos))

    @property
    def pad_token_id(self) -> int:
        """The id that pads rows (the tokenizer's pad token, else 0; padded positions are masked out)."""
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def response_tokens(self, text: str, *, add_end_of_turn: bool = True) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and character offsets of a response, by the one rule of :func:`tokens.tokenize_response`."""
        return tokenize_response(self.tokenizer, text, self.end_of_turn if add_end_of_turn else "")

    def _to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        device, dtype = self.device, next(self.model.parameters()).dtype
        out = {}
        for k, v in inputs.items():
            if torch.is_tensor(v):
                v = v.to(device)
                if v.is_floating_point():
                    v = v.to(dtype)
            out[k] = v
        return out

    # ----------------------------------------------------------------- running
    @torch.no_grad()
    def generate(self, videos: Sequence[np.ndarray], questions: Sequence[str], *, max_new_tokens: int = 64,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None, system: str | None = None, prefill: str = "") -> list[str]:
        """Answer each question about its video; returns the decoded answers (:func:`answer_text`: special tokens,
        control characters and bidi overrides removed, ends stripped).

        ``system`` and ``prefill`` apply to every prompt of the call (see :meth:`prompt`); an answer is the
        generated continuation only, without ``prefill``.

        With :attr:`reuse_prefixes` (the default) each video is encoded and its prefix prefilled once
        (:mod:`savi_plugin.models.prefix_cache`; across calls inside ``reuse_video_prefixes(lm)``).
        """
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        else:  # silence transformers' warnings about sampling knobs left in a checkpoint's generation config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.reuse_prefixes:
            from savi_plugin.models import prefix_cache

            if seed is not None:
                torch.manual_seed(seed)
            reused = prefix_cache.generate(self, videos, questions, {**kwargs, "pad_token_id": self.pad_token_id},
                                           max_new_tokens, system=system, prefill=prefill)
            if reused is not None:
                return [answer_text(self.tokenizer.decode(t, skip_special_tokens=True)) for t in reused]
        prompts = [self.prompt(q, system=system, prefill=prefill) for q in questions]
        inputs = self._to_device(dict(self._process(prompts, videos)))
        self.check_context(inputs["attention_mask"], max_new_tokens)
        if seed is not None:
            torch.manual_seed(seed)
        out = self.model.generate(**inputs, **kwargs, pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return [answer_text(t) for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    @torch.no_grad()
    def generate_text(self, conversations: Sequence[list[dict]], *, max_new_tokens: int = 64, do_sample: bool = False,
                      temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None) -> list[str]:
        """Text-only chat generation (no video), e.g. RRPO's two-turn phrase-tagging prompt.

        Args:
            conversations: one list of ``{"role": ..., "content": str}`` turns per sample, ending with a user turn.
            max_new_tokens, do_sample, temperature, top_p, seed: as in :meth:`generate`.
        """
        prompts = [self.processor.apply_chat_template(
            [{"role": t["role"], "content": [{"type": "text", "text": t["content"]}]} for t in turns],
            add_generation_prompt=True, tokenize=False) for turns in conversations]
        inputs = self._to_device(dict(self.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                                                     add_special_tokens=False)))
        self.check_context(inputs["attention_mask"], max_new_tokens)
        if seed is not None:
            torch.manual_seed(seed)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
        kwargs.update(dict(temperature=temperature, top_p=top_p) if do_sample else
                      dict(temperature=None, top_p=None, top_k=None))
        out = self.model.generate(**inputs, **kwargs, pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return [answer_text(t) for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def decoder(self):
        """The multimodal backbone that returns hidden states (the model without its LM head)."""
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return model.model

    def lm_head(self) -> torch.nn.Module:
        return self.model.get_output_embeddings()

    # ----------------------------------------------------------------- family knowledge used by training
    #: Verified (tests/training/test_packing.py) to give packed == unpacked log-probs for the shared-prefix row
    #: ``[prefix | chosen | rejected]`` with restarted rejected positions. A family sets it once it is tested.
    supports_packing: ClassVar[bool] = False

    def language_model(self) -> torch.nn.Module:
        """The text decoder inside :meth:`decoder` (where LoRA goes by default)."""
        language_model = getattr(self.decoder(), "language_model", None)
        if language_model is None:
            raise ValueError(f"{type(self).__name__}: the decoder has no language_model; override "
                             f"VideoLM.language_model (and pass lora target_modules)")
        return language_model

    def attention_implementation(self) -> str:
        """The language model's attention implementation (``sdpa``, ``eager``, ``flash_attention_2`` ...)."""
        config = self.model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        return str(getattr(text, "_attn_implementation", None) or getattr(config, "_attn_implementation", "eager"))

    def floating_dtype(self, module: torch.nn.Module | None = None) -> torch.dtype:
        """The dtype of the first floating-point weight of ``module`` (default: the decoder)."""
        for p in (module if module is not None else self.decoder()).parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def video_features(self, vision: dict[str, Any]):
        """Run the model's video encoder (vision tower + projector + pooling) once for a batch of videos.

        Args:
            vision: per-video processor outputs (``pixel_values_videos`` and, per family, ``video_grid_thw`` ...).

        Returns:
            The model's ``get_video_features`` output (``pooler_output``: the per-video features the decoder
            takes back as ``mm_encoder_outputs``).
        """
        decoder = self.decoder()
        fn = decoder.get_video_features
        accepted = inspect.signature(fn).parameters
        pixels = vision["pixel_values_videos"]
        if pixels.is_floating_point():
            pixels = pixels.to(self.floating_dtype(decoder))
        kwargs = {k: v for k, v in vision.items() if k in accepted and k != "pixel_values_videos"}
        return fn(pixels, return_dict=True, **kwargs)

    def mm_encoder_outputs(self, features, prompt) -> dict[str, Any]:
        """The decoder's ``mm_encoder_outputs`` for a batch's rows: each row gets its video's features.

        Args:
            features: :meth:`video_features`' output for the batch's videos (one entry per video, in order).
            prompt: the batch's :class:`~savi_plugin.training.batch.PromptSide` (``row_to_pair``: the video of
                each row; ``input_ids``).

        The default serves models whose ``get_video_features`` returns one pooled entry per video under the
        ``"video"`` modality; packed rows use the features as they are (no copy). Qwen3-VL's deepstack features
        (one per-video tuple per deepstack layer) follow the rows the same way.
        """
        row_to_pair = prompt.row_to_pair
        order = row_to_pair.tolist()
        if order == list(range(len(order))):
            return {"video": features}

        def rows(per_video):
            if torch.is_tensor(per_video):
                return per_video.index_select(0, row_to_pair.to(per_video.device))
            return tuple(per_video[i] for i in order)

        fields = {"pooler_output": rows(features.pooler_output)}
        deepstack = getattr(features, "deepstack_features", None)
        if deepstack is not None:
            fields["deepstack_features"] = [rows(layer) for layer in deepstack]
        return {"video": type(features)(**fields)}

    def vision_is_trainable(self) -> bool:
        """Whether any weight outside the language model (vision tower, projector, newline) is trained."""
        inside = {id(p) for p in self.language_model().parameters()}
        return any(p.requires_grad and id(p) not in inside for p in self.decoder().parameters())

    def position_ids(self, prompt) -> torch.Tensor:
        """Position ids of a batch's rows as plain sequences.

        The model's own multi-axis index (``get_rope_index``: Qwen2-VL's M-RoPE) when it has one, else
        ``0..n-1`` over the real tokens. ``prompt`` is the batch's
        :class:`~savi_plugin.training.batch.PromptSide`: ``input_ids``, ``attention_mask``, ``row_inputs``
        (per-token processor outputs), ``vision`` (per-video inputs) and ``row_to_pair``.
        """
        decoder = self.decoder()
        input_ids, attention = prompt.input_ids, prompt.attention_mask
        get_rope_index = getattr(decoder, "get_rope_index", None)
        if get_rope_index is None:
            return (attention.long().cumsum(-1) - 1).clamp(min=0)
        accepted = inspect.signature(get_rope_index).parameters
        kwargs = {k: v for k, v in prompt.row_inputs.items() if k in accepted}
        for k, v in prompt.vision.items():  # per-video entries (grids, seconds per grid) follow the rows
            if k in accepted and torch.is_tensor(v) and k != "pixel_values_videos":
                kwargs[k] = v.index_select(0, prompt.row_to_pair.to(v.device))
        positions, _ = get_rope_index(input_ids, attention_mask=attention, **kwargs)
        return positions

    def lora_target_modules(self) -> str:
        """A peft ``target_modules`` regex matching every ``nn.Linear`` inside the language model only.

        The vision tower, the projector and the LM head live outside it and are never matched (the RRPO recipe).
        """
        language_model = self.language_model()
        prefix = next((name for name, module in self.model.named_modules() if module is language_model), None)
        if prefix is None:
            raise ValueError("the language model is not a submodule of the model; pass lora target_modules")
        leaves = sorted({name.rsplit(".", 1)[-1] for name, module in language_model.named_modules()
                         if isinstance(module, torch.nn.Linear)})
        if not leaves:
            raise ValueError("the language model has no nn.Linear layers; pass lora target_modules")
        return rf"^{re.escape(prefix)}\..*\.({'|'.join(map(re.escape, leaves))})$"

    def template_token_ids(self) -> set[int]:
        """Chat-template tokens that the official RRPO preprocessing labels wherever they occur.

        LLaVA's ``preprocess_qwen`` (pritamqu/RRPO ``train_llavavideo.py``) un-masks ``\\n``, ``<|im_start|>`` and
        ``<|im_end|>`` in every turn; this returns their ids in this tokenizer (those it has).
        """
        ids = set()
        for token in ("<|im_start|>", "<|im_end|>"):
            value = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(value, int) and value != self.tokenizer.unk_token_id:
                ids.add(value)
        newline = self.tokenizer("\n", add_special_tokens=False)["input_ids"]
        if len(newline) == 1:
            ids.add(newline[0])
        return ids

    @cached_property
    def assistant_header(self) -> str:
        """The text the generation prompt adds to open the assistant turn (e.g. ``<|im_start|>assistant\\n``)."""
        without = self.processor.apply_chat_template(self.messages("q"), add_generation_prompt=False, tokenize=False)
        with_header = self.prompt("q")
        return with_header[len(without):] if with_header.startswith(without) else ""

    @cached_property
    def turn_separator(self) -> str:
        """What the template puts after :attr:`end_of_turn` (e.g. ``\\n``)."""
        marker = "\x00SAVI\x00"
        rendered = self.processor.apply_chat_template(self.messages("q", marker), tokenize=False)
        tail = rendered.split(marker, 1)[1]
        return tail[len(tail.rstrip("\n")):]


#: the hooks a backend may override, each call of which goes through the plugin boundary
#: (:mod:`savi_plugin.plugin_call`), built-in backends' alike: the methods, not the properties
HOOKS = ("messages", "prompt", "processor_kwargs", "encode", "response_tokens", "generate", "generate_text",
         "video_features", "mm_encoder_outputs", "position_ids", "check_context")


def _bounded(hook: Callable) -> Callable:
    """``hook`` called through the plugin boundary, naming the backend by the entry :func:`savi_plugin.models.
    load_backend` loaded it as (its ``entry``)."""
    import functools

    from savi_plugin import registry
    from savi_plugin.plugin_call import plugin_call

    @functools.wraps(hook)
    def bounded(self, *args, **kwargs):
        with plugin_call(registry.BACKENDS, getattr(self, "entry", None), self, hook.__name__):
            return hook(self, *args, **kwargs)

    bounded.bounded = True
    return bounded


def _bound_hooks(cls: type) -> None:
    for name in HOOKS:
        hook = cls.__dict__.get(name)
        if inspect.isfunction(hook) and not getattr(hook, "bounded", False):
            setattr(cls, name, _bounded(hook))


VideoLM.__init_subclass__ = classmethod(lambda cls, **kwargs: _bound_hooks(cls))  # each backend's own overrides
_bound_hooks(VideoLM)


def import_model_classes(path: str, *, trust_remote_code: bool = False) -> None:
    """Import the modules of every model class a checkpoint's configuration (and its sub-configurations) names.

    Under a ZeRO-3 configuration transformers builds a model inside DeepSpeed's ``zero.Init``, which patches the
    ``__init__`` of every module class -- also of a class *defined* while it is active (a modeling module
    imported lazily by the first ``from_pretrained``) -- and on exit puts back the ``__init__`` it saw first. For a
    class that the ``kernels`` package decorated after its definition (e.g. Qwen2 attention in transformers 5),
    that drops the decoration for the rest of the process: every later instance misses ``_kernel_funcs`` and fails
    at its first forward (a reference model, the next ``savi align`` iteration). Importing the classes first keeps
    their definition outside ``zero.Init``.
    """
    from transformers import AutoConfig, PretrainedConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return  # from_pretrained, next, says what is wrong with the checkpoint
    pending, seen = [config], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        try:
            MODEL_MAPPING[type(current)]  # imports the modeling module
        except (KeyError, ValueError, ImportError):
            pass
        pending.extend(v for v in vars(current).values() if isinstance(v, PretrainedConfig))


class ModelLoadError(ConfigurationError):
    """A checkpoint that cannot be loaded (a truncated weight file, a config that lies): the job cannot run as
    asked, so it stops before its first item with nothing marked (:mod:`savi_plugin.errors`)."""


@contextlib.contextmanager
def _held_load_report() -> Iterator[list[logging.LogRecord]]:
    """Hold back the load report transformers logs while it loads a model (a table of tensors, in colour): the
    records are collected in the yielded list for :func:`_check_loading_info`, which logs them again for a model
    it accepts and at debug level only (``savi -v``) for one it refuses, whose one line says what is wrong."""
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in str(record.msg):
            held.append(record)
            return False
        return True

    library = logging.getLogger("transformers.modeling_utils")
    library.addFilter(hold)
    try:
        yield held
    finally:
        library.removeFilter(hold)


def _check_loading_info(path: str | Path, info: dict, report: Sequence[logging.LogRecord] = ()) -> None:
    """Refuse a model whose weight files lack tensors its config asks for: transformers initialises them at
    random and says so only in its load report (``MISSING``), and the job would answer and train with them.
    ``report``: the load report's records (:func:`_held_load_report`), logged again for a model accepted, at
    debug level for one refused.

    Raises:
        ModelLoadError: naming the model and the first missing tensors.
    """
    missing = sorted(info.get("missing_keys") or [])
    for record in report:
        if missing:
            log.debug("%s", record.getMessage())
        else:
            logging.getLogger(record.name).handle(record)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelLoadError(f"{path}: the model cannot be loaded: its weight files lack {len(missing)} tensor(s) "
                             f"its config asks for ({shown}), which would start at random; restore the model's "
                             f"files")


def _check_adapter_placed(adapter: str | Path, model) -> None:
    """Refuse an adapter whose weight file holds tensors its config places on no module of the model (its
    ``target_modules`` narrowed, a layer excluded): peft drops them without a word, and the adapter would answer
    as only part of itself under its full name. Compared by name with what the loaded adapter holds, as peft's
    ``save_pretrained`` names it.

    Raises:
        ModelLoadError: naming the weight file, how many of its tensors are not placed, and their module kinds.
    """
    from peft import get_peft_model_state_dict

    from savi_plugin.data.identity import adapter_weight_file, weight_file_keys

    weights = adapter_weight_file(adapter)
    if weights is None:
        return
    placed = set(get_peft_model_state_dict(model)) | set(model.state_dict())  # a saved embedding is the model's
    held = weight_file_keys(weights)
    unplaced = [key for key in held if key not in placed]
    if unplaced:  # named by module kind (q_proj, down_proj): 24 full tensor names would not fit a line
        kinds = sorted({key.split(".lora_")[0].rsplit(".", 1)[-1] if ".lora_" in key else key for key in unplaced})
        shown = ", ".join(kinds[:8]) + (f" and {len(kinds) - 8} more" if len(kinds) > 8 else "")
        raise ModelLoadError(f"{weights}: the adapter cannot be loaded: {len(unplaced)} of the {len(held)} tensors "
                             f"of its weight file ({shown}) are on modules its adapter_config.json does not target "
                             f"(target_modules, layers_to_transform, exclude_modules); peft would drop them and "
                             f"apply only part of the adapter; restore the adapter's files")


def check_tokenizer_fits(path: str | Path, model, tokenizer, processor=None) -> None:
    """Refuse a tokenizer that does not belong to the loaded weights, which would fail every item alike, read as
    the machine's failure and retried forever: a token id beyond the model's input embedding (an ``IndexError``
    in the embedding lookup), or a placeholder token (the processor's ``video_token``, ``image_token``) whose
    id is not the one ``config.json`` tells the model to replace with vision features ("video features and
    video tokens do not match"). Every loader calls it (:meth:`VideoLM.from_pretrained`, the judge's
    :class:`~savi_plugin.generators.textlm.TextLM`).

    Raises:
        ModelLoadError: naming the file, the field or token and both ids.
    """
    where = f"{path}: the model cannot be loaded"
    vocab = tokenizer.get_vocab()
    embedding = model.get_input_embeddings()
    rows = getattr(embedding, "num_embeddings", None)
    if vocab and isinstance(rows, int):
        token, largest = max(vocab.items(), key=lambda kv: kv[1])
        if largest >= rows:
            source = "tokenizer.json" if (Path(path) / "tokenizer.json").is_file() else "the tokenizer"
            raise ModelLoadError(f"{where}: {source}: token {token!r} has id {largest}, beyond the model's input "
                                 f"embedding of {rows} rows (ids 0-{rows - 1}); the tokenizer does not belong to "
                                 f"these weights")
    config = model.config
    for modality in ("video", "image"):
        field = f"{modality}_token_id"
        declared, token = getattr(config, field, None), getattr(processor, f"{modality}_token", None)
        if type(declared) is not int or not isinstance(token, str) or token not in vocab:
            continue
        if vocab[token] != declared:
            key = getattr(type(config), "attribute_map", {}).get(field, field)  # as config.json spells it
            raise ModelLoadError(f"{where}: config.json: {key}: {declared}, but the tokenizer's {modality} token "
                                 f"{token!r} has id {vocab[token]}; the config does not describe this tokenizer")


#: families whose vision tower has fixed-size position embeddings: a frame of another size fails at the first video
FIXED_FRAME_FAMILIES = ("llava_onevision", "llava_next_video", "llava")


#: the question text :func:`check_processor_fits` renders: plain words a template writes as given
TEMPLATE_PROBE = "savi template check question"


def check_processor_fits(path: str | Path, model, processor, messages: Callable[[str], list[dict]]) -> None:
    """Refuse a processor that does not belong to the loaded weights, which would fail at the first document (inside
    torch, naming no file) rather than at load, or answer questions it never showed the model: a chat template that
    does not render (a Jinja syntax error in ``chat_template.jinja``), that leaves out the question's text (a fixed
    text in its place: every document scored on one prompt), that writes other than one video placeholder
    (the processor's ``video_token``) for a turn holding one video, or that ignores ``add_generation_prompt`` (it
    renders no more with it than without: no assistant turn is opened, so answers are generated and trained
    outside one -- pass 24 F row 55) or adds what is not how it opens the assistant's turn (the prompt for a
    question is not the start of the question with an answer, which training appends the answer to: a generation
    prompt opening a user turn -- pass 25 R3 #24), or that does not write an assistant turn's answer exactly once
    (:func:`template_end_of_turn`); or, for a vision tower of fixed resolution
    (:data:`FIXED_FRAME_FAMILIES`), frames resized to another size than ``vision_config.image_size``
    (``processor_config.json`` / ``preprocessor_config.json`` ``size``). ``messages``: the backend's chat turns for
    one video question (:meth:`VideoLM.messages`), rendered with :data:`TEMPLATE_PROBE` as the question.

    Raises:
        ModelLoadError: naming the file and the field.
    """
    where = f"{path}: the model cannot be loaded"
    template = getattr(processor, "chat_template", None) or getattr(getattr(processor, "tokenizer", None),
                                                                    "chat_template", None)
    if template:
        source = _template_source(path)
        conversation = messages(TEMPLATE_PROBE)  # the backend's hook: its own failure is named as its (HOOKS)
        try:
            rendered = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # noqa: BLE001 - jinja2's TemplateError and what a template raises: named
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise ModelLoadError(f"{where}: {source} does not render ({type(exc).__name__}: {first})") from None
        if TEMPLATE_PROBE not in rendered:
            raise ModelLoadError(f"{where}: {source} leaves out the question: a user turn's text is not in the "
                                 f"prompt it renders, so no question would reach the model")
        token = getattr(processor, "video_token", None)
        if isinstance(token, str) and token and rendered.count(token) != 1:
            raise ModelLoadError(f"{where}: {source} writes {rendered.count(token)} video placeholder(s) {token!r} "
                                 f"for a user turn holding one video, where the processor needs exactly one (it "
                                 f"puts a video's frames at each)")
        without = processor.apply_chat_template(messages(TEMPLATE_PROBE), tokenize=False, add_generation_prompt=False)
        template_end_of_turn(path, processor, messages)  # the assistant's answer written once, as training needs
        if not (len(rendered) > len(without) and rendered.startswith(without)):
            raise ModelLoadError(f"{where}: {source} ignores add_generation_prompt: it renders no assistant turn's "
                                 f"opening after the question, so answers would be generated and trained outside "
                                 f"an assistant turn")
        answered = processor.apply_chat_template(messages(TEMPLATE_PROBE, ANSWER_PROBE), tokenize=False)
        if not answered.startswith(rendered):
            opened = rendered[len(without):]
            raise ModelLoadError(f"{where}: {source}: add_generation_prompt adds {opened!r}, which is not how it "
                                 f"opens the assistant's turn (the question with an answer does not begin with the "
                                 f"prompt it renders), so answers would be generated and trained after another "
                                 f"turn's header")
    config = model.config
    size = getattr(getattr(config, "vision_config", None), "image_size", None)
    if getattr(config, "model_type", None) not in FIXED_FRAME_FAMILIES or type(size) is not int:
        return
    for part in ("video_processor", "image_processor"):
        given = getattr(getattr(processor, part, None), "size", None)  # a dict, or transformers' SizeDict
        sides = {given.get(k) if hasattr(given, "get") else getattr(given, k, None) for k in ("height", "width")}
        sides -= {None}
        if sides and sides != {size}:
            shown = "x".join(str(side) for side in sorted(sides))
            raise ModelLoadError(f"{where}: the {part}'s frame size {shown} is not config.json's "
                                 f"vision_config.image_size {size}: its frames would not fit the vision tower; the "
                                 f"processor does not belong to these weights")


#: the assistant answer :func:`template_end_of_turn` renders: a text no template or answer writes by itself
ANSWER_PROBE = "\x00SAVI\x00"


def template_end_of_turn(path: str | Path, processor, messages: Callable[..., list[dict]]) -> str:
    """The text the chat template writes right after an assistant answer (trailing newlines dropped), found by
    rendering one question and :data:`ANSWER_PROBE` as its answer (``messages``: :meth:`VideoLM.messages`).

    Raises:
        ModelLoadError: naming the template file, when the render does not hold the answer exactly once (a
            template that drops the assistant's content would train every pair on answers it never shows --
            pass 24 R2 row 26 crashed here with an IndexError instead).
    """
    rendered = processor.apply_chat_template(messages(TEMPLATE_PROBE, ANSWER_PROBE), tokenize=False)
    count = rendered.count(ANSWER_PROBE)
    if count != 1:
        said = "leaves out the assistant's answer: an assistant turn's text is not in the conversation it renders" \
            if count == 0 else f"writes the assistant's answer {count} times in the conversation it renders"
        raise ModelLoadError(f"{path}: the model cannot be loaded: {_template_source(path)} {said}, so no answer "
                             f"could be trained or scored as the model reads it")
    return rendered.split(ANSWER_PROBE, 1)[1].rstrip("\n")


def _template_source(path: str | Path) -> str:
    """The file a model folder's chat template comes from, as transformers prefers it, for a refusal to name."""
    folder = Path(path)
    for name in ("chat_template.jinja", "chat_template.json"):
        if (folder / name).is_file():
            return name
    return "tokenizer_config.json's chat_template" if (folder / "tokenizer_config.json").is_file() \
        else "its chat template"


def own_memory(model) -> None:
    """Give the model's CPU tensors memory of their own: transformers maps a ``.safetensors`` file and its CPU
    tensors read the mapped pages, so weights overwritten in place while a job runs changed the model mid-run
    (pass 12 A #13/#14: pairs 1-3 from one model, 4-20 from another) and a file truncated under it killed the
    process (SIGBUS). A copy to a GPU owns its memory already; this copies each CPU tensor once."""
    for param in model.parameters():
        if param.device.type == "cpu":
            param.data = param.data.clone()
    for module in model.modules():
        for name, buffer in module._buffers.items():
            if buffer is not None and buffer.device.type == "cpu":
                module._buffers[name] = buffer.clone()


@contextlib.contextmanager
def model_files_read(path: str | Path, what: str = "model") -> Iterator[None]:
    """Turn what transformers, peft and safetensors raise on a broken checkpoint (``what``: ``model`` or
    ``adapter``) into one :class:`ModelLoadError` line naming it -- and the damaged weight file, where one is
    (:func:`savi_plugin.data.identity.damaged_weight_file`; safetensors' own error names none); a failing
    machine (out of memory, an I/O error of the disk) stays what it is."""
    import torch

    from savi_plugin.data.identity import damaged_weight_file
    from savi_plugin.errors import MACHINE_ERRNOS

    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except OSError as exc:
        if exc.errno in MACHINE_ERRNOS:
            raise
        said = _processor_file_problem(path, exc) or _first_line(exc)
        raise ModelLoadError(f"{path}: the {what} cannot be loaded: {said}") from exc
    except Exception as exc:  # noqa: BLE001 - safetensors' SafetensorError derives from Exception only
        if not isinstance(exc, (ValueError, KeyError, RuntimeError, EOFError, TypeError, AttributeError)) and \
                type(exc).__name__ != "SafetensorError":
            raise
        if isinstance(exc, ConfigurationError):
            raise
        damaged = damaged_weight_file(path) or _tokenizer_file_problem(path, exc)
        if damaged:
            raise ModelLoadError(f"{path}: the {what} cannot be loaded: {damaged}") from exc
        raise ModelLoadError(f"{path}: the {what} cannot be loaded ({type(exc).__name__}: {_first_line(exc)})") \
            from exc


def _tokenizer_file_problem(path: str | Path, exc: BaseException) -> str | None:
    """What is wrong with a model folder's ``tokenizer.json`` when transformers could build no tokenizer (its
    own message lists three sources and names no file), or None for another failure or a folder holding one."""
    from savi_plugin.data.files import file_problem

    if not str(exc).startswith("Couldn't instantiate the backend tokenizer") or not Path(path).is_dir():
        return None
    problem = file_problem(Path(path) / "tokenizer.json", "tokenizer file")
    if problem is None:
        return None
    problem = "is missing" if problem == "file not found" else problem
    return (f"its tokenizer cannot be built: {Path(path) / 'tokenizer.json'} {problem}, and no slow tokenizer's "
            f"vocabulary there replaces it; restore the model's files")


#: where transformers finds each processor part's settings in a model folder: a section of ``processor_config.json``
#: (as transformers 5 saves them), else the part's own legacy file(s)
_PROCESSOR_PARTS = {"image processor": ("image_processor", ("preprocessor_config.json",)),
                    "video processor": ("video_processor", ("video_preprocessor_config.json",
                                                            "preprocessor_config.json")),
                    "feature extractor": ("feature_extractor", ("preprocessor_config.json",))}


def _processor_file_problem(path: str | Path, exc: BaseException) -> str | None:
    """Where a model folder lacks the settings of a processor part when transformers could build none (its own
    message gives advice for a hub id and names one legacy file), or None for another failure."""
    found = re.match(r"Can't load (image processor|video processor|feature extractor) for ", str(exc))
    folder = Path(path)
    if not found or not folder.is_dir():
        return None
    part = found.group(1)
    section, legacy = _PROCESSOR_PARTS[part]
    instead = f"and there is no {' or '.join(legacy)} in its place; restore the model's files"
    if (folder / "processor_config.json").is_file():
        return f"its {part} cannot be built: {folder / 'processor_config.json'} holds no {section!r} section, {instead}"
    return f"its {part} cannot be built: {folder / 'processor_config.json'} is missing, {instead}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


registry.declare_kind(registry.BACKENDS, VideoLM)  # what a backend entry is (registry.load)
