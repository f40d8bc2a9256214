"""``train.diagnostics: true``: per-pair rows at the start, every ``diagnostics_steps`` and the end of a real tiny
RRPO run, consistent with the trainer's own evaluation, and shown by ``savi inspect --diagnostics``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from savi_plugin.cli import main
from tests.builders import read_jsonl, tiny_rrpo_run, write_jsonl


@pytest.fixture(scope="module")
def run(tiny_llava_onevision, synthetic_samples, tmp_path_factory) -> Path:
    folder = tiny_rrpo_run(tmp_path_factory.mktemp("diagnostics"), tiny_llava_onevision, synthetic_samples[:3],
                           learning_rate=2.0e-3, max_steps=4, diagnostics=True, diagnostics_steps=2)
    return folder


def test_one_row_per_pair_and_point_with_consistent_numbers(run, tiny_llava_onevision):
    from transformers import AutoTokenizer

    rows = read_jsonl(run / "out" / "diagnostics.jsonl")
    assert sorted((r["step"], r["id"]) for r in rows) == [(s, f"p{i}") for s in (0, 2, 4) for i in range(3)]
    tokenizer = AutoTokenizer.from_pretrained(tiny_llava_onevision)
    pairs = {p["id"]: p for p in read_jsonl(run / "pairs.jsonl")}
    for row in rows:
        assert row["margin"] == pytest.approx(row["reward_chosen"] - row["reward_rejected"], abs=1e-6)
        assert sum(row["chosen_token_kl"]) == pytest.approx(row["kl_chosen"], rel=1e-4, abs=1e-7)
        assert "".join(row["chosen_tokens"]).startswith(pairs[row["id"]]["chosen"])
        answer = pairs[row["id"]]["chosen"].removeprefix("The answer is ").rstrip(".")
        assert row["tagged_tokens"]["chosen"] == len(tokenizer(" " + answer, add_special_tokens=False).input_ids)
        if row["step"] == 0:  # the LoRA adapter starts at zero: the policy is the reference
            assert row["margin"] == 0 and row["kl_chosen"] == 0 and row["logratio_chosen"] == 0
    mean = {step: sum(r["margin"] for r in rows if r["step"] == step) / 3 for step in (0, 2, 4)}
    assert mean[0] == 0 < mean[2] < mean[4]  # the pairs are learned, point by point
    logged = json.loads((run / "out" / "train_report.json").read_text())["log_history"]
    assert any("rewards/margins" in entry for entry in logged)


def test_inspect_shows_the_diagnostics_and_lists_pairs_never_learned(run, tmp_path, capsys):
    rows = read_jsonl(run / "out" / "diagnostics.jsonl")
    never = next(r["id"] for r in rows if r["step"] == 4)
    edited = [dict(r, margin=-abs(r["margin"]) - 1e-3) if r["id"] == never else r for r in rows]
    write_jsonl(tmp_path / "diag.jsonl", edited)
    assert main(["inspect", str(run / "pairs.jsonl"), "--out", str(tmp_path / "site"), "--diagnostics",
                 str(tmp_path / "diag.jsonl"), "--frames", "0", "--no-progress"]) == 0
    assert "1 never learned" in capsys.readouterr().out
    number = int(never[1:]) + 1
    page = (tmp_path / "site" / f"pairs/0/{number}.html").read_text()
    assert 'id="never-learned"' in page and "<svg" in page and 'class="tok"' in page
    other = (tmp_path / "site" / f"pairs/0/{1 if number != 1 else 2}.html").read_text()
    assert 'id="never-learned"' not in other and 'title="KL ' in other
