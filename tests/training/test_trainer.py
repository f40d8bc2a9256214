"""PreferenceTrainer on a tiny LLaVA-OneVision + LoRA, synthetic-video preference pairs, on the CPU."""

from __future__ import annotations

import pytest
import torch

from tests.builders import lora_policy, phrase_batch, preference_config, random_lora_backend, write_answer_pairs, write_jsonl


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    from savi_plugin.video.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("pairs")
    samples = make_synthetic_dataset(root / "videos", 8, seed=3)
    return write_answer_pairs(root / "train.jsonl", samples[:8]), None


def test_saved_adapter_reproduces_the_logprobs(tiny_llava_onevision, pair_files, tmp_path):
    from savi_plugin.models import load_backend
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.scoring import score_responses
    from savi_plugin.training.trainer import RRPOTrainer

    backend = lora_policy(tiny_llava_onevision)
    trainer = RRPOTrainer(backend, preference_config(tmp_path / "out", max_steps=3),
                          train_dataset=str(pair_files[0]))
    trainer.train()
    trainer.save_model(str(tmp_path / "adapter"))
    items = [trainer.train_dataset[i] for i in range(4)]
    batch = PreferenceCollator(backend, num_frames=4)(items)
    with torch.no_grad():
        before = score_responses(backend, batch, reference="adapter", kl_sides=("chosen",))
    reloaded = load_backend(tiny_llava_onevision, num_frames=4, adapter=tmp_path / "adapter")
    with torch.no_grad():
        after = score_responses(reloaded, PreferenceCollator(reloaded, num_frames=4)(items), reference="adapter",
                                kl_sides=("chosen",))
    for side in ("chosen", "rejected"):
        a, b = getattr(before, side), getattr(after, side)
        torch.testing.assert_close(a.policy_logps, b.policy_logps, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.reference_logps, b.reference_logps, atol=1e-6, rtol=0)
        assert (a.policy_logps - a.reference_logps).abs().max() > 1e-3  # training moved the policy


def test_a_pair_gives_the_same_loss_batched_and_alone(tiny_llava_onevision, synthetic_samples, tmp_path):
    """Different chosen/rejected lengths, several phrases, prompt (left) and response (right) padding."""
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset
    from savi_plugin.training.scoring import Objective
    from savi_plugin.training.scoring import score_responses

    s = synthetic_samples
    records = [
        # the pair under test: short question, short chosen, longer rejected, 2 and 3 phrases
        {"id": "x", "video": s[0].video, "question": "Which way?",
         "chosen": "The yellow triangle moves up.", "rejected": "It moves down fast, and the red one left.",
         "chosen_tagged": "The <MASK>yellow</MASK> triangle moves <MASK>up</MASK>.",
         "rejected_tagged": "It moves <MASK>down</MASK> fast, and the <MASK>red</MASK> one <MASK>left</MASK>."},
        # longer questions and longer responses on both sides, so the pair above is padded everywhere
        {"id": "y", "video": s[1].video, "question": s[1].question + " Think about the whole video first.",
         "chosen": "The answer is the one that appears first in the video, which is (A).",
         "rejected": "The answer is the one that appears last in the video, which is (B), after the circle.",
         "chosen_tagged": "The answer is the one that appears <MASK>first</MASK> in the video, which is (A).",
         "rejected_tagged": "The answer is the one that appears <MASK>last</MASK> in the video, which is (B), "
                            "after the circle."},
        {"id": "z", "video": s[2].video, "question": s[2].question + " Count carefully, every frame matters.",
         "chosen": "There are three shapes in the video and the answer is 3 for sure.",
         "rejected": "There are five shapes in the video and the answer is 5, maybe 6, for sure today.",
         "chosen_tagged": "There are <MASK>three</MASK> shapes in the video and the answer is <MASK>3</MASK> for sure.",
         "rejected_tagged": "There are <MASK>five</MASK> shapes in the video and the answer is <MASK>5, maybe 6</MASK>,"
                            " for sure today."},
    ]
    path = write_jsonl(tmp_path / "pairs.jsonl", records)
    backend = random_lora_backend(tiny_llava_onevision, seed=1)
    dataset = PreferenceDataset(path, backend.tokenizer, backend.end_of_turn, require_tags=True)
    x = dataset[0]
    assert sum(1 for k in set(x.chosen_phrase_ids) if k) == 2 and sum(1 for k in set(x.rejected_phrase_ids) if k) == 3
    assert len(x.chosen_ids) != len(x.rejected_ids)

    shared = {"beta": 0.1, "alpha": 0.01, "label_smoothing": 0.0}
    for packed in (True, False):
        collator = PreferenceCollator(backend, num_frames=4, packing=packed)
        batch_all, batch_one = collator([dataset[0], dataset[1], dataset[2]]), collator([dataset[0]])
        with torch.no_grad():
            together = score_responses(backend, batch_all, reference="adapter", kl_sides=("chosen",))
            alone = score_responses(backend, batch_one, reference="adapter", kl_sides=("chosen",))
        assert together.chosen.mask[0].sum() < together.chosen.mask[1].sum()  # x is padded on both sides
        assert together.rejected.mask[0].sum() < together.rejected.mask[1].sum()
        for loss_type in ("rrpo", "dpo"):
            objective = Objective(loss_type, shared)
            _, batched, batched_metrics = objective(together, batch_all)
            _, single, single_metrics = objective(alone, batch_one)
            torch.testing.assert_close(batched[0], single[0], atol=1e-5, rtol=0)
            for name in ("rewards/chosen", "rewards/rejected", "logps/chosen", "kl/chosen"):
                torch.testing.assert_close(batched_metrics[name][0], single_metrics[name][0], atol=1e-5, rtol=0)
            assert single_metrics["rewards/margins"].abs().item() > 1e-4


def test_metrics_average_every_micro_batch_of_a_step(tiny_llava_onevision, pair_files, tmp_path):
    from savi_plugin.training.trainer import RRPOTrainer

    class Recording(RRPOTrainer):
        micro_batches: list[dict[str, float]] = []

        def _store_metrics(self, split, metrics, per_pair=True):
            if split == "train" and per_pair:
                self.micro_batches.append({k: v.float().mean().item() for k, v in metrics.items()})
            super()._store_metrics(split, metrics, per_pair)

    backend = lora_policy(tiny_llava_onevision)
    trainer = Recording(backend, preference_config(tmp_path / "out", max_steps=3, gradient_accumulation_steps=2),
                        train_dataset=str(pair_files[0]))
    trainer.train()
    logged = [h for h in trainer.state.log_history if "rewards/chosen" in h]
    assert len(logged) == 3 and len(Recording.micro_batches) == 6
    for step, entry in enumerate(logged):
        pair = Recording.micro_batches[2 * step: 2 * step + 2]
        for name in ("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "kl/chosen"):
            expected = (pair[0][name] + pair[1][name]) / 2  # equal micro-batch sizes (4 pairs each)
            assert entry[name] == pytest.approx(expected, rel=1e-6, abs=1e-6), (step, name)
            if step > 0 and name != "rewards/accuracies":
                assert entry[name] != pytest.approx(pair[1][name], abs=1e-9)  # not just the last micro-batch


def test_a_non_finite_step_is_skipped_and_the_weights_do_not_move(tiny_llava_onevision, pair_files, tmp_path):
    from transformers import TrainerCallback

    from savi_plugin.training.trainer import DPOTrainer

    backend = lora_policy(tiny_llava_onevision)
    layer = backend.decoder().language_model.layers[0]
    calls = {"n": 0}

    def poison(module, args, output):  # the 2nd optimizer step's forward produces NaN
        calls["n"] += 1
        if calls["n"] == 3:  # forward calls: step 1 (policy, ref), step 2 (policy ...)
            hidden = output[0] if isinstance(output, tuple) else output
            hidden = hidden * float("nan")
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
        return output

    snapshots = []

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            snapshots.append({n: p.detach().clone() for n, p in backend.model.named_parameters() if p.requires_grad})

    layer.register_forward_hook(poison)
    trainer = DPOTrainer(backend, preference_config(tmp_path / "out", max_steps=4, gradient_accumulation_steps=1),
                         train_dataset=str(pair_files[0]), callbacks=[Snapshot()])
    trainer.train()
    assert trainer.nonfinite_steps == 1
    unchanged = all(torch.equal(snapshots[0][n], snapshots[1][n]) for n in snapshots[0])
    assert unchanged, "the non-finite step changed the weights"
    assert all(torch.isfinite(p).all() for p in snapshots[-1].values())
    assert any(not torch.equal(snapshots[1][n], snapshots[2][n]) for n in snapshots[1])  # training went on
    logged = [h for h in trainer.state.log_history if "nonfinite_steps" in h]
    assert [h["nonfinite_steps"] for h in logged] == [0, 1, 1, 1]
    # Adam took 3 steps, not 4: the skipped step left the optimizer state alone
    state = trainer.optimizer.state[next(p for p in backend.model.parameters() if p.requires_grad)]
    assert int(state["step"]) == 3


def test_non_finite_raises_when_asked(tiny_llava_onevision, pair_files, tmp_path):
    from savi_plugin.training.trainer import DPOTrainer

    backend = lora_policy(tiny_llava_onevision)
    backend.decoder().language_model.layers[0].register_forward_hook(
        lambda m, a, o: (o[0] * float("inf"), *o[1:]) if isinstance(o, tuple) else o * float("inf"))
    trainer = DPOTrainer(backend, preference_config(tmp_path / "out", max_steps=1, skip_nonfinite=False),
                         train_dataset=str(pair_files[0]))
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        trainer.train()


def test_trainers_are_registered_and_losses_get_their_contracts():
    from savi_plugin import registry
    from savi_plugin.training.scoring import Objective, Scores
    from savi_plugin.training.token_logprobs import ResponseTokenStats
    from savi_plugin.training.trainer import DPOTrainer, RRPOTrainer

    assert registry.load(registry.TRAINERS, "dpo") is DPOTrainer
    assert registry.load(registry.TRAINERS, "rrpo") is RRPOTrainer
    levels = {name: Objective(name).requirements.level for name in ("rrpo", "dpo", "ipo")}
    assert levels == {"rrpo": "token", "dpo": "sequence", "ipo": "sequence"}

    mask = torch.tensor([[True, True, False], [True, True, True]])
    policy = torch.tensor([[-1.0, -2.0, 0.0], [-1.0, -1.0, -1.0]])
    reference = torch.tensor([[-1.5, -2.5, 0.0], [-1.0, -1.0, -1.0]])
    side = ResponseTokenStats(mask, policy, reference, torch.zeros(2, 3))
    stats = Scores({"chosen": side, "rejected": ResponseTokenStats(mask, reference, policy)})
    batch = phrase_batch(mask.long(), mask.long())
    ipo = Objective("ipo", {"beta": 0.5})
    assert ipo.length_normalize  # declared by the loss, not keyed on its name
    _, losses, metrics = ipo(stats, batch)
    # IPO gets mean per-token log-probs: pair 0 margin = (0.5 - (-0.5)) = 1.0 -> (1 - 1/(2*0.5))^2 = 0
    assert losses[0].item() == pytest.approx(0.0, abs=1e-6)
    assert metrics["rewards/chosen"][0].item() == pytest.approx(0.5 * 0.5)
    _, losses, metrics = Objective("dpo", {"beta": 0.5})(stats, batch)  # sums: margin 2.0 -> -log sigmoid(1.0)
    assert losses[0].item() == pytest.approx(-torch.nn.functional.logsigmoid(torch.tensor(1.0)).item())
    assert metrics["logps/chosen"].tolist() == pytest.approx([-3.0, -3.0])
    assert metrics["rewards/accuracies"].tolist() == [1.0, 0.0]  # pair 1: equal rewards are not "correct"


def test_gradient_checkpointing_and_mixed_precision_reach_the_preference_forward(tiny_llava_onevision, pair_files,
                                                                                 tmp_path):
    from savi_plugin.training.trainer import RRPOTrainer

    def losses(**overrides):
        backend = lora_policy(tiny_llava_onevision, seed=3)
        config = preference_config(tmp_path / "out", max_steps=3, gradient_accumulation_steps=1, **overrides)
        trainer = RRPOTrainer(backend, config, train_dataset=str(pair_files[0]))
        trainer.train()
        return [h["loss"] for h in trainer.state.log_history if "rewards/chosen" in h]

    plain = losses()
    assert losses(gradient_checkpointing=True) == pytest.approx(plain, abs=1e-6)
    # bf16 autocast (CPU) must apply although the trainer does not call the model's patched forward
    bf16 = losses(bf16=True)
    assert bf16 == pytest.approx(plain, abs=2e-2) and bf16 != pytest.approx(plain, abs=1e-7)


def test_dropout_is_disabled_unless_asked(tiny_llava_onevision, pair_files, tmp_path):
    from savi_plugin.training.trainer import DPOTrainer

    def dropouts(**overrides):
        backend = lora_policy(tiny_llava_onevision, dropout=0.1)
        config = preference_config(tmp_path / "out", max_steps=1, **overrides)
        DPOTrainer(backend, config, train_dataset=str(pair_files[0]))
        return {m.p for m in backend.model.modules() if isinstance(m, torch.nn.Dropout)}

    assert dropouts() == {0.0}
    assert 0.1 in dropouts(disable_dropout=False)  # LoRA dropout kept when asked


def test_a_zero_learning_rate_is_run_and_said(tiny_llava_onevision, synthetic_samples, tmp_path, caplog):
    """``train.learning_rate=0`` is allowed (a run that measures the loss without changing the weights), and a
    warning says so, instead of a silent run that trains nothing."""
    import logging

    from safetensors.torch import load_file

    from tests.builders import tiny_rrpo_run

    with caplog.at_level(logging.WARNING, logger="savi_plugin.training.run"):
        folder = tiny_rrpo_run(tmp_path, tiny_llava_onevision, synthetic_samples[:2], learning_rate=0.0, max_steps=1)
    assert "learning_rate is 0: the adapter's weights will not change" in caplog.text
    adapter = load_file(str(folder / "out" / "adapter_model.safetensors"))
    assert all(t.abs().max().item() == 0 for name, t in adapter.items() if "lora_B" in name)  # lora_B starts at 0


def test_a_missing_or_empty_pair_file_is_named_in_one_line(tiny_llava_onevision, synthetic_samples, tmp_path, capsys):
    """Red team 9: a pair file that does not exist, or holds no record, was reported as `no usable preference
    pair (0 skipped)`. Missing: a configuration error (exit 2) naming the flag or key; empty: said so."""
    import yaml

    from savi_plugin.cli import main
    from tests.builders import tiny_rrpo_files

    _, recipe = tiny_rrpo_files(tmp_path, tiny_llava_onevision, synthetic_samples[:1], max_steps=1)
    recipe["data"] = {"pairs": str(tmp_path / "gone.jsonl")}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    for argv, expected in (([], "data.pairs: " + str(tmp_path / "gone.jsonl") + ": not found"),
                           (["--data", str(tmp_path / "absent.jsonl")], "absent.jsonl: --data not found")):
        assert main(["train", str(tmp_path / "r.yaml"), "--output-dir", str(tmp_path / "out"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["train", str(tmp_path / "r.yaml"), "--output-dir", str(tmp_path / "out"),
                 "--data", str(tmp_path / "empty.jsonl")]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]  # no progress bars
    assert len(err) == 1 and "empty.jsonl:-:-: holds no record (the file is empty" in err[0], err
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("pairs", [1, 7, 8, 9, 64])
@pytest.mark.parametrize("batch", [1, 4, 100])
@pytest.mark.parametrize("accumulation", [1, 2, 3, 4294967295])
@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("drop_last", [False, True])
def test_a_batch_or_accumulation_the_data_cannot_fill_is_said_naming_the_key(pairs, batch, accumulation, processes,
                                                                               drop_last):
    """``gradient_accumulation_steps=4294967295`` on 8 pairs trained one step of 2 micro-batches with no word
    (pass 23 D #23): the Trainer ends an epoch's accumulation at its last micro-batch. A batch above the pairs of a
    process, or an accumulation above its micro-batches, is one warning naming the key; the run goes on."""
    from savi_plugin.training.trainer import data_size_warnings

    per_process = -(-pairs // processes)
    micro = per_process // batch if drop_last else -(-per_process // batch)
    lines = data_size_warnings(pairs, batch, accumulation, processes, drop_last)
    if batch > per_process:
        assert len(lines) == 1 and lines[0].startswith(f"train.per_device_train_batch_size={batch} is above "), lines
    elif accumulation > micro:
        assert len(lines) == 1 and lines[0].startswith(f"train.gradient_accumulation_steps={accumulation} is above "
                                                       f"the {micro} micro-batch(es)"), lines
        assert f"not {batch * accumulation * processes}" in lines[0]
    else:
        assert lines == []
    assert all("\n" not in line for line in lines)


def test_the_trainer_says_an_accumulation_its_data_cannot_fill(tiny_llava_onevision, pair_files, tmp_path, caplog):
    import logging

    from savi_plugin.training.trainer import RRPOTrainer

    with caplog.at_level(logging.WARNING, logger="savi_plugin.training.trainer"):
        RRPOTrainer(lora_policy(tiny_llava_onevision), preference_config(tmp_path / "out", max_steps=1,
                                                                         gradient_accumulation_steps=4294967295),
                    train_dataset=str(pair_files[0]))
    said = [r.getMessage() for r in caplog.records if "gradient_accumulation_steps" in r.getMessage()]
    assert len(said) == 1 and "above the 2 micro-batch(es) of 4" in said[0], said
