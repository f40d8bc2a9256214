"""RRPO ``kl_scope: official`` equals the official loss on a Qwen2-template batch, the shipped RRPO recipe's first
training step equals the official loss on the tiny converted LLaVA-Video, and a reference-free loss trains.

The official value is computed here by an independent re-implementation written from the structure of
pritamqu/RRPO: ``train_llavavideo.py:preprocess_qwen`` labels (the assistant turn, and every ``\\n``,
``<|im_start|>``, ``<|im_end|>`` token of the conversation) and ``llava/losses.py:RRPO`` (full logits at every
position, log-softmax policy, softmax-then-log reference, KL summed over the labelled positions of the chosen
sequence, phrase margins accumulated per sign).
"""

from __future__ import annotations

import json

import pytest
import torch
from tests.builders import random_lora_backend

BETA, ALPHA = 0.3, 0.2

RECORDS = [
    ("The <MASK>red</MASK> square moves <MASK>left</MASK>.", "The <MASK>blue</MASK> square moves <MASK>up</MASK>."),
    ("It is a <MASK>circle</MASK>.", "It is a <MASK>triangle</MASK> and it is big."),
    ("There are <MASK>three</MASK> shapes.", "There are <MASK>five</MASK> shapes, <MASK>maybe six</MASK>."),
]


@pytest.fixture(scope="module")
def setup(tiny_llava_onevision, synthetic_samples, tmp_path_factory):
    from savi_plugin.training.dataset import PreferenceDataset

    path = tmp_path_factory.mktemp("official") / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, (chosen, rejected) in enumerate(RECORDS):
            plain = [t.replace("<MASK>", "").replace("</MASK>", "") for t in (chosen, rejected)]
            fh.write(json.dumps({"id": f"p{i}", "video": synthetic_samples[i].video,
                                 "question": synthetic_samples[i].question, "chosen": plain[0], "rejected": plain[1],
                                 "chosen_tagged": chosen, "rejected_tagged": rejected}) + "\n")
    backend = random_lora_backend(tiny_llava_onevision)
    dataset = PreferenceDataset(path, backend.tokenizer, backend.end_of_turn, require_tags=True)
    return backend, [dataset[i] for i in range(len(dataset))]


def official_side(backend, item, side: str, frames, process=None):
    """One sequence the official way: the whole conversation through the chat template and the processor,
    ``preprocess_qwen``'s labels and signs. Returns (policy logits, reference logits, labels, signs).
    ``process(text, frames)``: the model inputs (default: the processor as it is)."""
    tokenizer = backend.tokenizer
    response = getattr(item.record, side)
    text = backend.processor.apply_chat_template(backend.messages(item.record.question, response), tokenize=False)
    inputs = (process(text, frames) if process is not None
              else backend.processor(text=[text], videos=[frames], return_tensors="pt"))
    ids = inputs["input_ids"][0]
    im_start, im_end = tokenizer.convert_tokens_to_ids("<|im_start|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1
    unmask = {newline[0], im_start, im_end}
    labels = torch.full_like(ids, -100)
    assistant = max(j for j in range(len(ids)) if ids[j] == im_start)  # the last turn is the assistant's
    labels[assistant:] = ids[assistant:]
    for j in range(len(ids)):
        if int(ids[j]) in unmask:
            labels[j] = ids[j]
    # signs: the phrase id of each response token, where the response sits in the conversation
    response_ids = getattr(item, f"{side}_ids")
    n = len(response_ids)
    start = next(j for j in range(assistant, len(ids)) if ids[j:j + n].tolist() == response_ids)
    signs = torch.zeros_like(ids)
    signs[start:start + n] = torch.tensor(getattr(item, f"{side}_phrase_ids"))
    with torch.no_grad():
        policy = backend.model(**inputs).logits[0]
        with backend.model.disable_adapter():
            reference = backend.model(**inputs).logits[0]
    return policy, reference, labels, signs


def official_loss(sides, beta=BETA, alpha=ALPHA):
    """``RRPO.get_batch_logps`` + ``RRPO.loss`` for one pair: sides = {chosen: (...), rejected: (...)}."""
    margins, kls = {}, {}
    for side, (logits, reference_logits, labels, signs) in sides.items():
        labels, signs = labels[1:].clone(), signs[1:].clone()
        logits, reference_logits = logits[:-1], reference_logits[:-1]
        loss_mask = labels != -100
        labels[labels == -100] = 0
        vocab_logps = logits.log_softmax(-1)
        reference_ps = reference_logits.softmax(-1)
        reference_logps = reference_ps.log()
        per_position_kl = (reference_ps * (reference_logps - vocab_logps)).sum(-1)
        margin = vocab_logps.gather(-1, labels[:, None])[:, 0] - reference_logps.gather(-1, labels[:, None])[:, 0]
        margins[side] = torch.stack([(margin * (signs == k)).sum() for k in signs.unique() if k > 0]).sum()
        kls[side] = (per_position_kl * loss_mask).sum()
    logits = margins["chosen"] - margins["rejected"]
    return -torch.nn.functional.logsigmoid(beta * logits) + alpha * kls["chosen"]


@pytest.mark.parametrize("packing", [True, False])
def test_official_kl_scope_equals_the_official_loss(setup, packing):
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.scoring import Objective, score_responses
    from savi_plugin.video import read_frames

    backend, items = setup
    official = Objective("rrpo", {"beta": BETA, "alpha": ALPHA}, {"kl_scope": "official"})
    collator = PreferenceCollator(backend, num_frames=4, packing=packing, template_positions=True)
    batch = collator(items)
    with torch.no_grad():
        scores = score_responses(backend, batch, **official.scoring_options("adapter"))
    _, ours, _ = official(scores, batch)
    expected = []
    for item in items:
        frames = read_frames(item.video_path, 4).frames
        expected.append(official_loss({side: official_side(backend, item, side, frames)
                                       for side in ("chosen", "rejected")}))
    torch.testing.assert_close(ours, torch.stack(expected), atol=1e-5, rtol=0)
    # the default scope (response + end of turn) regularises less: the two differ by the template KL
    _, response_scope, _ = Objective("rrpo", {"beta": BETA, "alpha": ALPHA})(scores, batch)
    template = scores["template"]
    torch.testing.assert_close(ours - response_scope, ALPHA * template.total(template.kl), atol=1e-6, rtol=0)
    assert (template.total(template.kl) > 1e-4).all()


def official_frames(path, num_sample: int):
    """The official training loader's frames (pritamqu/RRPO ``train_llavavideo.py:1290-1297``, ``force_sample``):
    decord, ``interval = len(vr) / float(num_sample)``, ``frame_idx = [int(interval * i) ...]``."""
    from decord import VideoReader, cpu

    vr = VideoReader(str(path), ctx=cpu(0), num_threads=1)
    interval = len(vr) / float(num_sample)
    return vr.get_batch([int(interval * i) for i in range(num_sample)]).asnumpy()


def test_rrpo_recipe_first_step_equals_the_official_loss(tiny_llava_video, setup, tmp_path):
    """The shipped LLaVA-Video RRPO recipe, as it is (its loss, beta, alpha, kl_scope and frame rule; 4 frames
    for speed), trains a first step whose loss is the official loss on the official training frames."""
    from savi_plugin.training.arguments import training_kwargs
    from savi_plugin.recipe import load_recipe
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.dataset import PreferenceDataset
    from savi_plugin.training.trainer import PreferenceTrainer

    pairs = setup[1][0].file
    frames = 4  # the synthetic videos have 16 frames: interval takes 0, 4, 8, 12; uniform 0, 5, 10, 15
    recipe = load_recipe("llava_video_7b_rrpo_16f", [f"model.num_frames={frames}"])
    kwargs = training_kwargs(recipe)
    assert kwargs["frame_rule"] == "interval" and kwargs["loss_options"] == {"kl_scope": "official"}
    beta, alpha = kwargs["beta"], kwargs["alpha"]
    backend = random_lora_backend(tiny_llava_video, r=8, alpha=64)
    dataset = PreferenceDataset(pairs, backend.tokenizer, backend.end_of_turn, require_tags=True)
    items = [dataset[i] for i in range(len(dataset))]
    keep = ("loss_type", "beta", "alpha", "loss_options", "frame_rule", "num_frames", "disable_dropout")
    args = PreferenceConfig(output_dir=str(tmp_path / "out"), **{k: kwargs[k] for k in keep if k in kwargs},
                            max_steps=1, per_device_train_batch_size=len(items), learning_rate=0.0, logging_steps=1,
                            use_cpu=True, save_strategy="no", disable_tqdm=True, report_to="none")
    trainer = PreferenceTrainer(backend, args, train_dataset=pairs)
    trainer.train()
    ours = next(h["loss"] for h in trainer.state.log_history if "loss" in h)

    def process(text, video):
        return backend._process([text], [video])

    def official(frame_source, scope_alpha=alpha):
        losses = []
        for item in items:
            video = frame_source(item.video_path)
            sides = {side: official_side(backend, item, side, video, process) for side in ("chosen", "rejected")}
            losses.append(official_loss(sides, beta, scope_alpha))
        return float(torch.stack(losses).mean())

    expected = official(lambda path: official_frames(path, frames))
    assert abs(ours - expected) < 1e-5, (ours, expected)
    # what the test can tell apart: our frame rule gives another loss
    from savi_plugin.video import read_frames

    uniform = official(lambda path: read_frames(path, frames, sampling="uniform").frames)
    assert abs(uniform - expected) > 1e-4, (uniform, expected)


def test_a_reference_free_loss_trains_without_any_reference(tiny_llava_onevision, setup, tmp_path):
    """SimPO on a policy with no LoRA adapter: a reference pass (adapter disabled) would be an error."""
    from savi_plugin.models import load_backend
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.trainer import PreferenceTrainer

    _, items = setup
    backend = load_backend(tiny_llava_onevision, num_frames=4)
    args = PreferenceConfig(output_dir=str(tmp_path / "out"), loss_type="simpo", num_frames=4, max_steps=2,
                            per_device_train_batch_size=3, logging_steps=1, learning_rate=1e-3, use_cpu=True,
                            save_strategy="no", disable_tqdm=True, report_to="none")
    trainer = PreferenceTrainer(backend, args, train_dataset=items[0].file)
    assert trainer.scoring_options["reference"] == "none"
    trainer.train()
    logged = [h for h in trainer.state.log_history if "rewards/chosen" in h]
    assert len(logged) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in logged)
    assert trainer.vision_calls == 2  # one vision pass per batch: no reference forward
    assert logged[1]["rewards/margins"] != logged[0]["rewards/margins"]  # the policy moved
