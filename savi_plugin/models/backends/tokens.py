"""The one tokenisation rule for responses, and the one way a response is appended to a prompt row.

A response is tokenised **on its own**, ``tokenizer(response + end_of_turn, add_special_tokens=False)``, and
appended to the tokenised prompt, so the prompt/response boundary is exact and the same ids are trained on,
scored and given phrase ids (their character offsets come with them). :meth:`VideoLM.response_tokens` (which the
training dataset, the phrase-id helper and the eval log-likelihood use) calls :func:`tokenize_response`;
:func:`savi_plugin.training.batch.build_batch`, where every prompt + response row is built, calls
:func:`append_rows`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch

from savi_plugin.errors import InputError
from savi_plugin.untrusted import hidden_control, without_hidden_controls

#: Label value of a position that is not scored (prompt, video, padding): PyTorch's cross-entropy default.
IGNORE_INDEX = -100


class ControlTextError(InputError):
    """Data text holds one of the model's control tokens or placeholders, or a control character or bidi override
    (:func:`savi_plugin.untrusted.hidden_control`); the item is refused (final)."""

    skip_reason = "control_token_in_text"


_CONTROL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def answer_text(decoded: str) -> str:
    """A generated answer as data text: ``decoded`` (special tokens already skipped) without control characters
    or bidi overrides (:func:`savi_plugin.untrusted.without_hidden_controls`, which the pair check would refuse),
    ends stripped. Every decode of generated tokens goes through here."""
    return without_hidden_controls(decoded).strip()


def control_strings(tokenizer) -> tuple[str, ...]:
    """The texts ``tokenizer`` reads as single control tokens: its special tokens and every added special token
    (chat markers such as ``<|im_start|>``, placeholders such as ``<video>`` and ``<image>``), longest first."""
    try:
        return _CONTROL[tokenizer]
    except (KeyError, TypeError):
        pass
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            found.add(str(token.content))
    strings = tuple(sorted((s for s in found if s), key=len, reverse=True))
    try:
        _CONTROL[tokenizer] = strings
    except TypeError:
        pass
    return strings


def check_plain_text(tokenizer, text: str, field: str) -> None:
    """The one rule for data text that meets a tokenizer (questions and responses): it may not contain one of
    the tokenizer's control strings (:func:`control_strings`), since the chat template, the video processor and
    the tokenizer would read it as a turn marker or a placeholder instead of text. Refused, not escaped: a
    placeholder inside a question would make the processor expand it into video tokens. Nor may it hold a
    control character or a bidi override (:func:`savi_plugin.untrusted.hidden_control`, the rule every pair and
    manifest text is read under): an eval document reaches the model here without passing a pair reader, and a
    terminal escape or U+202E in its question would be read by the model and shown in the logs as it is.

    Raises:
        ControlTextError: naming the field and the control string (an input failure: final, counted).
    """
    for control in control_strings(tokenizer):
        if control in text:
            raise ControlTextError(f"{field} contains {control!r}, a control token of this model's tokenizer; data "
                                   f"text may not contain the model's special tokens or placeholders")
    hidden = hidden_control(text)
    if hidden:
        raise ControlTextError(f"{field} contains {hidden}; data text may not hold control characters or bidi "
                               f"overrides")


def tokenize_response(tokenizer, text: str, end_of_turn: str = "") -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets (into ``text + end_of_turn``) of one response.

    Args:
        tokenizer: a fast Hugging Face tokenizer (offsets need it).
        text: the response.
        end_of_turn: what the chat template puts after an answer (``VideoLM.end_of_turn``, e.g. ``<|im_end|>``),
            or ``""`` for a bare continuation (eval log-likelihood).

    Raises:
        ControlTextError: ``text`` holds one of the tokenizer's control strings (:func:`check_plain_text`).
    """
    check_plain_text(tokenizer, text, "response")
    enc = tokenizer(text + end_of_turn, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def pad_stack(rows: Sequence[Sequence[int]] | Sequence[torch.Tensor], fill: int, dtype=torch.long,
              length: int | None = None) -> torch.Tensor:
    """Right-pad 1-D sequences to one length (at least 1) and stack them into ``[N, T]``."""
    width = max([len(r) for r in rows] + [1 if length is None else length])
    out = torch.full((len(rows), width), fill, dtype=dtype)
    for i, row in enumerate(rows):
        if len(row):
            out[i, :len(row)] = torch.as_tensor(row, dtype=dtype)
    return out


def prompt_rows(prompts: dict, aligned: Sequence[str]) -> list[dict[str, torch.Tensor]]:
    """The unpadded prompt of each sample: ``input_ids`` and the ``aligned`` per-token processor outputs."""
    ids, mask = prompts["input_ids"], prompts["attention_mask"].bool()
    return [{k: prompts[k][i][mask[i]] for k in ["input_ids", *aligned]} for i in range(ids.shape[0])]


def aligned_keys(prompts: dict) -> list[str]:
    """Processor outputs with one value per prompt token besides ids and mask (e.g. Qwen2-VL's token types)."""
    ids = prompts["input_ids"]
    return [k for k, v in prompts.items()
            if torch.is_tensor(v) and v.shape == ids.shape and k not in ("input_ids", "attention_mask")]


def append_rows(rows: Sequence[dict[str, torch.Tensor]], tails: Sequence[Sequence[int]], pad_id: int,
                aligned: Sequence[str]) -> dict[str, torch.Tensor]:
    """Append token ids to prompt rows and right-pad them into a batch.

    Args:
        rows: unpadded prompt rows (:func:`prompt_rows`), one per output row.
        tails: the ids appended to each row (a response, or ``chosen + rejected`` for a packed row).
        pad_id: the tokenizer's pad id.
        aligned: per-token processor outputs; appended text tokens get 0 (text, not vision).

    Returns:
        ``input_ids``, ``attention_mask`` (``[N, L]``, right-padded) and each aligned key.
    """
    ids = [torch.cat([row["input_ids"], torch.tensor(list(tail), dtype=row["input_ids"].dtype)])
           for row, tail in zip(rows, tails)]
    out = {"input_ids": pad_stack(ids, pad_id, dtype=rows[0]["input_ids"].dtype),
           "attention_mask": pad_stack([torch.ones(len(i), dtype=torch.long) for i in ids], 0)}
    for key in aligned:
        dtype = rows[0][key].dtype
        out[key] = pad_stack([torch.cat([row[key], torch.zeros(len(tail), dtype=dtype)])
                              for row, tail in zip(rows, tails)], 0, dtype=dtype)
    return out
