"""The typed batch: its layout arithmetic and how it travels (device moves, the Trainer's questions)."""

import pickle

import torch

from savi_plugin.training.batch import PreferenceBatch, PromptSide, ResponseSide, response_positions


def _batch() -> PreferenceBatch:
    prompt = PromptSide(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long),
                        {"mm_token_type_ids": torch.zeros(2, 5, dtype=torch.long)},
                        {"pixel_values_videos": torch.rand(2, 3, 4), "video_grid_thw": torch.ones(2, 3)},
                        torch.tensor([[3, 1, 1], [3, 1, 1]]), torch.tensor([0, 1]), True)
    side = ResponseSide(torch.tensor([0, 1]), torch.tensor([[2], [2]]), torch.tensor([[7], [8]]),
                        torch.tensor([[1], [0]]))
    return PreferenceBatch(prompt, {"chosen": side, "rejected": side}, weights=torch.ones(2),
                           truncated=torch.tensor(0), pair_ids=["a", "b"])


def test_map_reaches_every_tensor_and_keeps_the_rest():
    batch = _batch()
    doubled = batch.map(lambda t: t.to(torch.float64) if t.is_floating_point() else t + 1)
    assert doubled.prompt.vision["pixel_values_videos"].dtype == torch.float64
    assert doubled.prompt.row_inputs["mm_token_type_ids"].sum() == 10
    assert doubled.chosen.targets.tolist() == [[8], [9]] and doubled.weights.dtype == torch.float64
    assert doubled.pair_ids == ["a", "b"] and doubled.prompt.packed is True
    assert batch.chosen.targets.tolist() == [[7], [8]]  # a copy: the original is unchanged
    moved = batch.to("cpu")
    assert isinstance(moved, PreferenceBatch) and moved.sides.keys() == batch.sides.keys()
    assert pickle.loads(pickle.dumps(batch)).rejected.phrase_ids.tolist() == [[1], [0]]  # data loader workers


def test_the_trainer_sees_no_labels_and_an_empty_batch_moves():
    assert "labels" not in _batch() and "input_ids" not in _batch()
    empty = PreferenceBatch(None, {}, skipped_records=[{"file": "p.jsonl", "line": 3}])
    assert empty.to("cpu").prompt is None and not empty.pair_ids


def test_response_positions_predict_each_token_from_the_one_before():
    # chosen token j is predicted from P-1+j; a packed rejected block's token 0 from the last prefix position
    assert response_positions(3, 2, 3) == [2, 3]
    assert response_positions(3, 3, 5) == [2, 5, 6]
    assert response_positions(3, 0, 3) == []
