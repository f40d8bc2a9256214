"""The backend adapter: the one place that knows how a model family turns frames + text into inputs.

Everything above this layer (generators, trainers, the lmms-eval wrapper) talks to a :class:`VideoLM`
and never to a processor directly, so adding a model family means adding one backend.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16`` ... -> a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


class PromptTooLongError(ValueError):
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
    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model, processor, *, num_frames: int = 32, name_or_path: str = ""):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.num_frames = num_frames
        self.name_or_path = name_or_path

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, path: str | Path, *, adapter: str | Path | None = None, dtype: str = "float32",
                        device: str = "cpu", num_frames: int = 32, trust_remote_code: bool = False,
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

        processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        kwargs: dict[str, Any] = {"dtype": resolve_dtype(dtype), "trust_remote_code": trust_remote_code}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        model = cls.load_model(str(path), **kwargs)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=is_trainable)
        model.to(device)
        if not is_trainable:
            model.eval()
        return cls(model, processor, num_frames=num_frames, name_or_path=str(path))

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
        """Raise :class:`PromptTooLongError` if a prompt plus ``max_new_tokens`` exceeds :attr:`context_length`.

        Without this check a RoPE model silently generates past the positions it was trained on.
        """
        limit = self.context_length
        if limit is None:
            return
        for index, length in enumerate(attention_mask.sum(-1).tolist()):
            if length + max_new_tokens > limit:
                raise PromptTooLongError(
                    f"prompt {index} of the batch is {int(length)} tokens; with max_new_tokens={max_new_tokens} it "
                    f"exceeds the model's context window of {limit} tokens (prompts are never truncated: lower "
                    f"num_frames or shorten the question)")

    # ----------------------------------------------------------------- prompts
    def messages(self, question: str, response: str | None = None) -> list[dict]:
        """The chat turns for one video question (and optionally its answer)."""
        turns = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
        if response is not None:
            turns.append({"role": "assistant", "content": [{"type": "text", "text": response}]})
        return turns

    def prompt(self, question: str) -> str:
        """The chat-formatted prompt, ending with the generation prompt for the assistant turn."""
        return self.processor.apply_chat_template(self.messages(question), add_generation_prompt=True, tokenize=False)

    @cached_property
    def end_of_turn(self) -> str:
        """The text the chat template puts right after an assistant answer (e.g. ``<|im_end|>``).

        Found by rendering a turn with a marker answer, so it follows whatever template the checkpoint ships.
        Trailing newlines are not part of it: the model stops at the end-of-turn token.
        """
        marker = "\x00SAVI\x00"
        rendered = self.processor.apply_chat_template(self.messages("q", marker), tokenize=False)
        tail = rendered.split(marker, 1)[1]
        return tail.rstrip("\n")

    def processor_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for the processor call (family-specific)."""
        return {}

    # ----------------------------------------------------------------- inputs
    def _process(self, texts: list[str], videos: Sequence[np.ndarray]):
        if len(texts) != len(videos):
            raise ValueError(f"got {len(texts)} prompts but {len(videos)} videos")
        return self.processor(text=texts, videos=list(videos), return_tensors="pt", padding=True,
                              padding_side="left", **self.processor_kwargs())

    def encode(self, videos: Sequence[np.ndarray], questions: Sequence[str],
               responses: Sequence[str] | None = None, *, add_end_of_turn: bool = True) -> dict[str, Any]:
        """Model inputs for a batch.

        Without ``responses``: left-padded prompts, ready for ``generate``.
        With ``responses``: right-padded ``prompt + response (+ end of turn)`` with ``labels`` (-100 outside
        the response), ``response_offsets`` (per sample, the character offsets of each response token in
        its response string) and ``prompt_lengths``. Each response is tokenized on its own, so the
        prompt/response boundary is exact.
        """
        prompts = [self.prompt(q) for q in questions]
        batch = self._process(prompts, videos)
        if responses is None:
            return dict(batch)
        if len(responses) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses")
        ids, mask = batch["input_ids"], batch["attention_mask"].bool()
        aligned = [k for k, v in batch.items() if torch.is_tensor(v) and v.shape == ids.shape and k != "attention_mask"]
        eot = self.end_of_turn if add_end_of_turn else ""
        rows: list[dict[str, torch.Tensor]] = []
        offsets, prompt_lengths = [], []
        for i, response in enumerate(responses):
            enc = self.tokenizer(response + eot, add_special_tokens=False, return_offsets_mapping=True)
            resp_ids = torch.tensor(enc["input_ids"], dtype=ids.dtype)
            row = {k: batch[k][i][mask[i]] for k in aligned}
            n_prompt = int(mask[i].sum())
            row["input_ids"] = torch.cat([row["input_ids"], resp_ids])
            for k in aligned:
                if k != "input_ids":
                    row[k] = torch.cat([row[k], torch.zeros(len(resp_ids), dtype=row[k].dtype)])
            row["labels"] = torch.cat([torch.full((n_prompt,), -100, dtype=ids.dtype), resp_ids])
            rows.append(row)
            offsets.append([tuple(o) for o in enc["offset_mapping"]])
            prompt_lengths.append(n_prompt)
        length = max(len(r["input_ids"]) for r in rows)
        out = {k: v for k, v in batch.items() if k not in aligned and k != "attention_mask"}
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for key in aligned + ["labels"]:
            fill = -100 if key == "labels" else (pad_id if key == "input_ids" else 0)
            out[key] = torch.stack([torch.cat([r[key], torch.full((length - len(r[key]),), fill, dtype=r[key].dtype)])
                                    for r in rows])
        out["attention_mask"] = torch.stack([torch.cat([torch.ones(len(r["input_ids"]), dtype=torch.long),
                                                        torch.zeros(length - len(r["input_ids"]), dtype=torch.long)])
                                             for r in rows])
        out["response_offsets"] = offsets
        out["prompt_lengths"] = prompt_lengths
        return out

    @staticmethod
    def model_inputs(encoded: dict[str, Any]) -> dict[str, Any]:
        """Drop the bookkeeping keys (``labels``, offsets, lengths) before calling the model."""
        return {k: v for k, v in encoded.items() if k not in ("labels", "response_offsets", "prompt_lengths")}

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
                 seed: int | None = None) -> list[str]:
        """Answer each question about its video; returns the decoded answers (special tokens removed)."""
        inputs = self._to_device(self.encode(videos, questions))
        self.check_context(inputs["attention_mask"], max_new_tokens)
        if seed is not None:
            torch.manual_seed(seed)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        else:  # silence transformers' warnings about sampling knobs left in a checkpoint's generation config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = self.model.generate(**inputs, **kwargs, pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

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
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def decoder(self):
        """The multimodal backbone that returns hidden states (the model without its LM head)."""
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return model.model

    def lm_head(self) -> torch.nn.Module:
        return self.model.get_output_embeddings()

    def hidden_states(self, inputs: dict[str, Any]) -> torch.Tensor:
        """Final hidden states ``[B, L, H]`` for model inputs (no full-vocabulary logits are formed)."""
        return self.decoder()(**self.model_inputs(inputs), use_cache=False).last_hidden_state

    @torch.no_grad()
    def response_logprobs(self, videos: Sequence[np.ndarray], questions: Sequence[str],
                          responses: Sequence[str]) -> list[torch.Tensor]:
        """Per-token log-probabilities of each response (including the end-of-turn token), in fp32.

        Only response positions go through the LM head, so memory does not grow with the video length.
        """
        encoded = self._to_device(self.encode(videos, questions, responses))
        hidden = self.hidden_states(encoded)
        labels = encoded["labels"]
        head = self.lm_head()
        out = []
        for i in range(labels.shape[0]):
            pos = (labels[i, 1:] != -100).nonzero().squeeze(-1)  # hidden at t predicts label t+1
            logits = head(hidden[i, pos]).float()
            out.append(torch.log_softmax(logits, -1).gather(-1, labels[i, pos + 1, None]).squeeze(-1).cpu())
        return out
