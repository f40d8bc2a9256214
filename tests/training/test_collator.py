"""Dataset + collator: tokenization and phrase ids, decoding once per pair, truncation, bad records."""

from __future__ import annotations


import pytest

from savi_plugin.data import DataError
from tests.builders import write_jsonl


@pytest.fixture(scope="module")
def backend(tiny_llava_onevision):
    from savi_plugin.models import load_backend

    return load_backend(tiny_llava_onevision, num_frames=4)


def _record(sample, i, tagged=True, **extra):
    rec = {"id": f"p{i}", "video": sample.video, "question": sample.question,
           "chosen": f"The answer is {sample.answer}.", "rejected": "The answer is none of them."}
    if tagged:
        rec["chosen_tagged"] = f"The answer is <MASK>{sample.answer}</MASK>."
        rec["rejected_tagged"] = "The answer is <MASK>none</MASK> of them."
    rec.update(extra)
    return rec


def _dataset(backend, path, **kwargs):
    from savi_plugin.training.dataset import PreferenceDataset

    return PreferenceDataset(path, backend.tokenizer, backend.end_of_turn, **kwargs)


def test_responses_are_tokenized_like_the_backend_and_phrase_ids_follow_the_tags(backend, synthetic_samples, tmp_path):
    s = synthetic_samples[0]
    data = write_jsonl(tmp_path / "p.jsonl", [_record(s, 0, chosen=f"  The answer is {s.answer}.",
                                                 chosen_tagged=f"The answer is <MASK> {s.answer} </MASK>.")])
    item = _dataset(backend, data, require_tags=True)[0]
    response, _ = backend.response_tokens(f"  The answer is {s.answer}.")
    assert item.chosen_ids == response  # the one tokenisation rule, end-of-turn included
    tokens = [backend.tokenizer.decode([t]) for t in item.chosen_ids]
    tagged = "".join(t for t, k in zip(tokens, item.chosen_phrase_ids) if k)
    assert tagged.strip() == s.answer and set(item.chosen_phrase_ids) == {0, 1}
    assert item.chosen_phrase_ids[-1] == 0  # the end-of-turn token is never in a phrase
    rejected = "".join(t for t, k in zip([backend.tokenizer.decode([t]) for t in item.rejected_ids],
                                         item.rejected_phrase_ids) if k)
    assert rejected.strip() == "none"


def test_each_video_is_decoded_once_per_pair(backend, synthetic_samples, tmp_path, monkeypatch):
    import savi_plugin.training.collator as collator_module
    from savi_plugin.training.collator import PreferenceCollator

    data = write_jsonl(tmp_path / "p.jsonl", [_record(s, i) for i, s in enumerate(synthetic_samples[:3])])
    dataset = _dataset(backend, data)
    decoded = []
    real = collator_module.read_frames
    monkeypatch.setattr(collator_module, "read_frames", lambda path, n, **kw: decoded.append(path) or real(path, n, **kw))
    for packed in (True, False):
        decoded.clear()
        batch = PreferenceCollator(backend, num_frames=4, packing=packed)([dataset[i] for i in range(3)])
        assert sorted(decoded) == sorted(s.video for s in synthetic_samples[:3])
        assert batch.prompt.vision["pixel_values_videos"].shape[:2] == (3, 4)  # per pair, not per response
        for side in ("chosen", "rejected"):
            # the targets are the response tokens, gathered at the positions that predict them
            rows, positions, targets = batch.sides[side].rows, batch.sides[side].positions, batch.sides[side].targets
            for b in range(3):
                n = int((targets[b] != -100).sum())
                predicted_from = positions[b, :n]
                assert predicted_from[0] == batch.prompt.segments[rows[b], 0] - 1  # last prompt token
                if packed and side == "rejected":  # later tokens follow their own block, not chosen's
                    start = batch.prompt.segments[b, 0] + batch.prompt.segments[b, 1]
                    ids = batch.prompt.input_ids[b, start:start + n]
                else:
                    ids = batch.prompt.input_ids[rows[b], predicted_from + 1]
                assert ids.tolist() == targets[b, :n].tolist()


def test_truncation_keeps_the_start_and_is_counted(backend, synthetic_samples, tmp_path):
    from savi_plugin.training.collator import PreferenceCollator

    s = synthetic_samples[0]
    long = "The answer is " + ", ".join(["sideways"] * 30) + "."
    tagged = long.replace("is ", "is <MASK>", 1).replace(", sideways", "</MASK>, sideways", 1)
    data = write_jsonl(tmp_path / "p.jsonl", [_record(s, 0, rejected=long, rejected_tagged=tagged)])
    item = _dataset(backend, data)[0]
    prompt = PreferenceCollator(backend, num_frames=4, packing=False)([item]).prompt.segments[0, 0].item()
    budget = prompt + len(item.chosen_ids) + 2
    batch = PreferenceCollator(backend, num_frames=4, max_length=budget)([item])
    assert batch.truncated.item() == 1  # only the long rejected response was cut
    assert (batch.rejected.targets[0] != -100).sum() == budget - prompt
    assert batch.rejected.targets[0, :budget - prompt].tolist() == item.rejected_ids[:budget - prompt]
    assert batch.rejected.phrase_ids[0].tolist()[:budget - prompt] == item.rejected_phrase_ids[:budget - prompt]
    with pytest.raises(DataError, match=r"p\.jsonl:1:video: .*max_length=10"):
        PreferenceCollator(backend, num_frames=4, max_length=10)([item])


def test_missing_video_and_bad_records_name_file_line_field(backend, synthetic_samples, tmp_path):
    s = synthetic_samples[0]
    records = [_record(s, 0), _record(s, 1, video=str(tmp_path / "gone.mp4")), {"id": "p2", "video": s.video}]
    data = write_jsonl(tmp_path / "p.jsonl", records)
    with pytest.raises(DataError, match=r"p\.jsonl:2:video: video file not found: .*gone\.mp4"):
        _dataset(backend, data)
    dataset = _dataset(backend, data, bad_records="skip")
    assert len(dataset) == 1
    report = dataset.report()
    assert report["skipped_by_reason"] == {"missing_video": 1, "bad_record": 1}
    assert {(r["line"], r["field"]) for r in report["skipped_records"]} == {(2, "video"), (3, "question")}


def test_unreadable_lines_are_counted_as_such_in_line_order(backend, synthetic_samples, tmp_path, caplog):
    """Red team B35: a ``null`` line, a non-UTF-8 line and two records glued on one line are skipped under the
    readers' own reasons (never as "bad or missing video"), named ``file:line:-`` (never ``None``), in line order."""
    import json
    import logging

    s = synthetic_samples[0]
    g = [json.dumps(_record(s, i)).encode() for i in range(4)]
    data = tmp_path / "p16.jsonl"
    data.write_bytes(b"\n".join([g[0], b"null", g[1], b'\xff\xfe{"id": 1}', g[2], g[2] + g[3], g[3]]) + b"\n")
    with caplog.at_level(logging.WARNING, logger="savi_plugin.training.dataset"):
        dataset = _dataset(backend, data, bad_records="skip")
    assert len(dataset) == 4
    report = dataset.report()
    assert report["skipped_by_reason"] == {"bad_record": 1, "unreadable_line": 2}
    assert [(r["line"], r["reason"]) for r in report["skipped_records"]] == [
        (2, "bad_record"), (4, "unreadable_line"), (6, "unreadable_line")]
    warning = next(r.getMessage() for r in caplog.records if "skipped" in r.getMessage())
    assert "3 pair(s) skipped (1 bad_record, 2 unreadable_line); first: " in warning
    assert f"first: {data}:2:-: expected a JSON object, got null" in warning
    assert "None" not in warning and "video" not in warning


def test_untagged_pairs_are_skipped_and_counted_under_rrpo(backend, synthetic_samples, tmp_path, caplog):
    s = synthetic_samples[0]
    data = write_jsonl(tmp_path / "p.jsonl", [_record(s, 0), _record(s, 1, tagged=False), _record(s, 2, tagged=False)])
    assert len(_dataset(backend, data)) == 3  # DPO: tags are not needed
    with caplog.at_level("WARNING"):
        dataset = _dataset(backend, data, require_tags=True)
    assert len(dataset) == 1 and dataset.report()["skipped_by_reason"] == {"untagged": 2}
    assert "2 untagged" in caplog.text
    only_untagged = write_jsonl(tmp_path / "u.jsonl", [_record(s, 1, tagged=False)])
    with pytest.raises(DataError, match="no usable preference pair .*none tagged"):
        _dataset(backend, only_untagged, require_tags=True)


def test_a_corrupt_video_is_a_data_error(backend, synthetic_samples, tmp_path):
    import shutil

    from savi_plugin.training.collator import PreferenceCollator

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    data = write_jsonl(tmp_path / "p.jsonl", [_record(synthetic_samples[0], 0, video=str(broken))])
    with pytest.raises(DataError, match=r"p\.jsonl:1:video: .*broken\.mp4"):  # caught at load, from its header
        _dataset(backend, data)
    # a file that breaks after loading (overwritten, torn) is still an error naming the record, at collate time
    video = tmp_path / "video.mp4"
    shutil.copy(synthetic_samples[0].video, video)
    item = _dataset(backend, write_jsonl(tmp_path / "q.jsonl", [_record(synthetic_samples[0], 0, video=str(video))]))[0]
    video.write_bytes(b"torn")
    with pytest.raises(DataError, match=r"q\.jsonl:1:video: .*video\.mp4"):
        PreferenceCollator(backend, num_frames=4)([item])


def test_a_video_gone_after_loading_is_counted_as_missing_not_bad(backend, synthetic_samples, tmp_path):
    """Red team 9 #20: a video moved away while training ran was skipped as bad_video; README's reason for a
    video that is not there is missing_video. The decoder's reason is kept (a torn file stays bad_video)."""
    import shutil

    from savi_plugin.training.collator import PreferenceCollator

    videos = [tmp_path / "gone.mp4", tmp_path / "torn.mp4"]
    for video in videos:
        shutil.copy(synthetic_samples[0].video, video)
    data = write_jsonl(tmp_path / "p.jsonl", [_record(synthetic_samples[0], i, video=str(v)) for i, v in enumerate(videos)])
    items = list(_dataset(backend, data))
    videos[0].unlink()
    videos[1].write_bytes(b"torn")
    kept, _, skipped = PreferenceCollator(backend, num_frames=4, bad_records="skip")._decode_batch(items)
    assert kept == [] and [(s["line"], s["reason"]) for s in skipped] == [(1, "missing_video"), (2, "bad_video")]


def test_relative_videos_resolve_against_the_data_root(backend, synthetic_samples, tmp_path):
    from pathlib import Path

    s = synthetic_samples[0]
    data = write_jsonl(tmp_path / "p.jsonl", [_record(s, 0, video=Path(s.video).name)])
    with pytest.raises(DataError, match="video file not found"):
        _dataset(backend, data)
    assert _dataset(backend, data, data_root=Path(s.video).parent)[0].video_path == s.video


def _loss_needs_tags():
    """Every registered loss with whether it needs phrase tags (its default parameters)."""
    from savi_plugin import registry
    from savi_plugin.training.scoring import load_loss

    out = {}
    for name in registry.available(registry.LOSSES):
        loss = load_loss(name)
        out[name] = loss.requirements(loss.params({}, {})).tags
    return out


LOSS_TAGS = _loss_needs_tags()


@pytest.fixture(scope="module")
def cut_cases(backend, synthetic_samples, tmp_path_factory):
    """Pairs whose tags start late on one side, and the prompt length of their video (same for all)."""
    from savi_plugin.training.collator import PreferenceCollator

    s = synthetic_samples[0]
    late = "The answer is, after a long look at the whole clip, {}."
    records = [
        _record(s, 0, chosen=late.format(s.answer), chosen_tagged=late.format(f"<MASK>{s.answer}</MASK>")),
        _record(s, 1, rejected=late.format("none"), rejected_tagged=late.format("<MASK>none</MASK>")),
        _record(s, 2),  # tags early on both sides
    ]
    data = write_jsonl(tmp_path_factory.mktemp("cut") / "p.jsonl", records)
    items = _dataset(backend, data, require_tags=True).items
    prompt = PreferenceCollator(backend, num_frames=4, packing=False)([items[0]]).prompt.segments[0, 0].item()
    return data, items, prompt


@pytest.mark.parametrize("loss", sorted(LOSS_TAGS))
@pytest.mark.parametrize("cut", ["chosen_tags", "rejected_tags", "whole_response"])
def test_a_pair_truncated_into_no_signal_is_an_input_failure(backend, cut_cases, loss, cut, caplog):
    """Loss types x (tags cut on chosen, on rejected, the response cut entirely): refused naming file:line and
    max_length, or skipped and counted as truncated_away; a cut that leaves the signal trains."""
    from savi_plugin.training.collator import PreferenceCollator, needed_room

    data, items, prompt = cut_cases
    tags = LOSS_TAGS[loss]
    item = items[0] if cut != "rejected_tags" else items[1]
    need, field = needed_room(item, True)
    assert need > 3 and field == ("rejected_tagged" if cut == "rejected_tags" else "chosen_tagged")
    max_length = prompt if cut == "whole_response" else prompt + need - 1  # one token short of the first tag
    broken = cut == "whole_response" or tags
    raising = PreferenceCollator(backend, num_frames=4, max_length=max_length, require_tags=tags)
    if not broken:  # an untagged loss keeps a pair whose tags were cut: its sequence reward is still defined
        batch = raising([item])
        assert batch.pair_ids == [item.record.id] and batch.truncated.item() >= 1
        return
    with pytest.raises(DataError, match=rf"p\.jsonl:{item.line}:\w+: .*max_length={max_length}"):
        raising([item])
    skipping = PreferenceCollator(backend, num_frames=4, max_length=max_length, require_tags=tags,
                                  bad_records="skip")
    batch = skipping([item, items[2]])
    if cut == "whole_response":  # no pair has room for a response
        assert [r["reason"] for r in batch.skipped_records] == ["truncated_away"] * 2 and not batch.pair_ids
    else:
        assert [r["reason"] for r in batch.skipped_records] == ["truncated_away"]
        assert batch.skipped_records[0]["line"] == item.line and batch.pair_ids == ["p2"]
    if cut == "whole_response":  # every pair: a configuration error before training (the next test)
        return
    # before training, from the probed video size, without decoding
    dataset = _dataset(backend, data, require_tags=True, bad_records="skip")
    skipping.screen(dataset)
    report = dataset.report()
    assert report["skipped_by_reason"] == {"truncated_away": len(dataset.skipped)}
    assert item.line in {r["line"] for r in report["skipped_records"]} and len(dataset) == 3 - len(dataset.skipped)
    assert 3 not in {r["line"] for r in report["skipped_records"]}  # p2 (line 3) keeps its early tags


def test_a_budget_that_cuts_every_pair_is_a_configuration_error(backend, cut_cases):
    from savi_plugin.errors import ConfigError
    from savi_plugin.training.collator import PreferenceCollator

    from savi_plugin.training.collator import needed_room

    data, items, prompt = cut_cases
    least = min(needed_room(item, True)[0] for item in items)
    for tags, max_length in ((True, prompt + least - 1), (False, prompt)):
        dataset = _dataset(backend, data, require_tags=True, bad_records="skip")
        with pytest.raises(ConfigError, match=rf"train\.max_length: .*cuts every one of the 3 pair.*max_length="
                                              rf"{max_length}"):
            PreferenceCollator(backend, num_frames=4, max_length=max_length, require_tags=tags,
                               bad_records="skip").screen(dataset)
    # a budget that keeps every tag screens nothing out
    dataset = _dataset(backend, data, require_tags=True)
    PreferenceCollator(backend, num_frames=4, max_length=prompt + 40, require_tags=True).screen(dataset)
    assert len(dataset) == 3 and not dataset.skipped


@pytest.mark.parametrize("model", ["tiny_llava_onevision", "tiny_qwen2_vl"])
def test_the_screen_measures_the_prompt_the_decoded_video_gives(model, synthetic_samples, tmp_path, request):
    """The screen's prompt length from the probed frame size equals the collator's from the decoded video, also
    for Qwen2-VL, whose video tokens follow each video's own size."""
    from savi_plugin.models import load_backend
    from savi_plugin.training.collator import PreferenceCollator

    import numpy as np

    from savi_plugin.video.synthetic import write_mp4

    lm = load_backend(request.getfixturevalue(model), num_frames=4)
    wide = tmp_path / "wide.mp4"  # another frame size: another number of video tokens for Qwen2-VL
    write_mp4(wide, np.random.default_rng(0).integers(0, 255, (6, 48, 96, 3), dtype=np.uint8))
    data = write_jsonl(tmp_path / "p.jsonl", [_record(synthetic_samples[0], 0),
                                              _record(synthetic_samples[1], 1, video=str(wide))])
    dataset = _dataset(lm, data, require_tags=True)
    collator = PreferenceCollator(lm, num_frames=4, packing=False)
    for item in dataset.items:
        decoded = collator([item]).prompt.segments[0, 0].item()
        assert collator.blank_prompt_length(dataset.video_size(item.video_path), item.record.question) == decoded


def test_a_batch_size_whose_batches_may_exceed_the_decoded_bytes_budget_is_refused_before_training(
        backend, synthetic_samples, tmp_path, monkeypatch):
    from savi_plugin.errors import ConfigError
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.video.decode import decoded_bytes, declared_frame_size

    samples = synthetic_samples[:3]
    data = write_jsonl(tmp_path / "p.jsonl", [_record(s, i) for i, s in enumerate(samples)])
    clips = [decoded_bytes(4, *declared_frame_size(s.video)) for s in samples]
    two_largest = sum(sorted(clips)[-2:])
    monkeypatch.setenv("SAVI_MAX_BATCH_DECODED_BYTES", str(two_largest))
    dataset = _dataset(backend, data, bad_records="skip")
    collator = PreferenceCollator(backend, num_frames=4, bad_records="skip")
    collator.screen_decoded_bytes(dataset, 2)  # any two pairs fit
    with pytest.raises(ConfigError, match=r"^train\.per_device_train_batch_size: per_device_train_batch_size=3: a "
                                          r"batch of 3 videos .*above the per-batch budget .*"
                                          r"\$SAVI_MAX_BATCH_DECODED_BYTES.*at most 2 of the largest clips fit"):
        collator.screen_decoded_bytes(dataset, 3)
    assert len(dataset) == 3 and not dataset.skipped  # a configuration error: no pair is skipped for it
    # at run time, from the headers before decoding (a video replaced since the screen): the same refusal
    before = collator.videos_decoded
    with pytest.raises(ConfigError, match=r"train\.per_device_train_batch_size: a batch of 3 videos from "):
        collator([dataset[i] for i in range(3)])
    assert collator.videos_decoded == before
    assert collator([dataset[0], dataset[1]]).pair_ids == ["p0", "p1"]
    monkeypatch.setenv("SAVI_MAX_BATCH_DECODED_BYTES", str(min(clips) - 1))
    with pytest.raises(ConfigError, match=r"even in a batch of one; sample fewer frames \(num_frames\)"):
        collator.screen_decoded_bytes(dataset, 1)


def test_savi_train_refuses_an_over_budget_batch_size_with_one_line_before_the_first_step(
        tiny_llava_onevision, synthetic_samples, tmp_path, monkeypatch, capsys):
    import yaml

    from savi_plugin.cli import main
    from savi_plugin.video.decode import decoded_bytes, declared_frame_size
    from tests.builders import tiny_rrpo_files

    _, recipe = tiny_rrpo_files(tmp_path, tiny_llava_onevision, synthetic_samples[:2], per_device_train_batch_size=2)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    largest = max(decoded_bytes(4, *declared_frame_size(s.video)) for s in synthetic_samples[:2])
    monkeypatch.setenv("SAVI_MAX_BATCH_DECODED_BYTES", str(largest + 1))  # one pair fits, two do not
    code = main(["train", str(tmp_path / "r.yaml"), "--data", str(tmp_path / "pairs.jsonl"),
                 "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "per_device_train_batch_size=2: a batch of 2 videos" in lines[0], err
    assert "$SAVI_MAX_BATCH_DECODED_BYTES" in lines[0] and "at most 1 of the largest clips fit" in lines[0]
    assert not list((tmp_path / "out").glob("**/adapter_model.safetensors"))
