"""A local text-only causal LM for the helper roles of data generation: RRPO's judge and phrase tagger.

RRPO's ``docs/DATA.md`` tags long answers with "a powerful LLM", not with the video model being aligned;
:class:`TextLM` loads any Hugging Face causal LM from a **local** directory (``AutoModelForCausalLM``,
``trust_remote_code`` off unless asked; nothing is downloaded) and offers the same
``generate_text(conversations, ...)`` interface as the video backends, so the generators treat both alike.
:func:`resolve_text_lm` turns a generator option (a path, ``"policy"`` or None) into the model to use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

POLICY = "policy"


class TextLM:
    """A causal LM and its tokenizer, loaded from a local directory.

    Args:
        path: a directory with ``config.json``, the weights and the tokenizer.
        device: where to run it.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        trust_remote_code: passed to transformers (off by default).
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", dtype: str = "float32",
                 trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from savi_plugin.data.watched import check_unchanged
        from savi_plugin.data.model_config import loadable_model_problem
        from savi_plugin.models.backends.base import (ModelLoadError, check_tokenizer_fits, model_files_read,
                                                      own_memory)

        path = Path(path)
        problem = loadable_model_problem(path)  # a torn generation_config.json would be read as absent
        if problem and not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: {problem}; a judge or tagger model must be a local "
                                    "Hugging Face causal LM folder")
        if problem:
            raise ModelLoadError(f"{path}: the judge or tagger model cannot be loaded: {problem}")
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in dtypes:
            raise ValueError(f"dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
        self.path = path
        with model_files_read(path, "judge or tagger model"):
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtypes[dtype],
                                                              trust_remote_code=trust_remote_code).to(device).eval()
        check_tokenizer_fits(path, self.model, self.tokenizer)
        own_memory(self.model)  # weights written in place later do not change the loaded model
        for member in path.rglob("*"):  # loaded as the running job identified them (data/watched.py)
            check_unchanged(member)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def __repr__(self) -> str:
        return f"TextLM({str(self.path)!r})"

    def render(self, turns: list[dict]) -> str:
        """A conversation as the model's chat prompt (its chat template, or plain ``User:``/``Assistant:`` turns
        when the tokenizer has none), ending with the assistant's turn to write."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        lines = [f"{'User' if t['role'] == 'user' else 'Assistant'}: {t['content']}" for t in turns]
        return "\n\n".join(lines + ["Assistant:"])

    def generate_text(self, conversations: Sequence[list[dict]], *, max_new_tokens: int = 64,
                      do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                      seed: int | None = None) -> list[str]:
        """One reply per conversation (``[{"role": "user"|"assistant", "content": str}, ...]``)."""
        import torch

        from savi_plugin.models.backends.tokens import answer_text

        prompts = [self.render(list(turns)) for turns in conversations]
        self.tokenizer.padding_side = "left"
        device = next(self.model.parameters()).device
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        if seed is not None:
            torch.manual_seed(seed)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
        kwargs.update(dict(temperature=temperature, top_p=top_p) if do_sample else
                      dict(temperature=None, top_p=None, top_k=None))
        with torch.no_grad():
            out = self.model.generate(**inputs, **kwargs, pad_token_id=self.tokenizer.pad_token_id)
        return [answer_text(t) for t in self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:],
                                                                    skip_special_tokens=True)]


def check_text_lm_option(spec: Any, name: str) -> None:
    """Refuse, before anything runs, an option value that cannot name a text LM (a path without ``config.json``)."""
    if spec is None or spec == POLICY or hasattr(spec, "generate_text"):
        return
    if not isinstance(spec, (str, Path)):
        raise ValueError(f"{name} must be a local model directory or 'policy', got {spec!r}")
    from savi_plugin.data.model_config import loadable_model_problem

    problem = loadable_model_problem(spec) or causal_lm_problem(spec)
    if problem:
        shown_spec = spec if str(spec).strip() else repr(spec)  # an empty name, visibly
        raise ValueError(f"{name}: {shown_spec}: {problem}; give a local Hugging Face causal LM folder "
                         "(nothing is downloaded) or 'policy' for the video model")


def causal_lm_problem(folder: str | Path) -> str | None:
    """Why ``folder/config.json`` names no model transformers' ``AutoModelForCausalLM`` builds (a video model's
    ``llava_onevision``, a sequence-to-sequence ``t5`` ...), or None; an unreadable config is left
    to the loader, which names it."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from savi_plugin.data.model_config import read_config

    config = read_config(Path(folder) / "config.json")
    if config is None:
        return None
    model_type = config.get("model_type")
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return None
    return (f"config.json: model_type {model_type!r} is not a causal text LM (AutoModelForCausalLM has no class "
            f"for it); a judge or tagger reads text only")


def resolve_text_lm(spec: Any, policy, *, role: str):
    """The text LM a generator option names.

    Args:
        spec: None (no model), ``"policy"`` (the video model being aligned, only when asked), a local
            directory path, or an object with ``generate_text``.
        policy: the generator's video model.
        role: ``judge`` or ``tagger`` (for error messages).
    """
    if spec is None:
        return None
    if spec == POLICY:
        if not hasattr(policy, "generate_text"):
            raise ValueError(f"{role}_model: 'policy' needs a backend with generate_text")
        return policy
    if hasattr(spec, "generate_text"):
        return spec
    if isinstance(spec, (str, Path)):
        device, dtype = "cpu", "float32"
        try:
            param = next(policy.model.parameters())
            device, dtype = str(param.device), str(param.dtype).replace("torch.", "")
        except (AttributeError, StopIteration):
            pass
        return TextLM(spec, device=device, dtype=dtype)
    raise ValueError(f"{role}_model must be a local model directory, 'policy' or None, got {spec!r}")
