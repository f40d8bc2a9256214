"""VideoSAVi as its authors describe it: CLIP-adjusted DPO writes a per-pair loss weight into the record,
the prompts cover what the project page lists, and the recipe's learning rate and iterations follow the evidence."""

from __future__ import annotations

import math

import pytest
import yaml

from savi_plugin.data import DataError, validate_record
from savi_plugin.generators.prompts import default_prompts
from tests.builders import RECIPES

PAIR = {"id": "a", "video": "v.mp4", "question": "q", "chosen": "x", "rejected": "y"}


def test_record_weight_is_an_optional_positive_finite_number():
    assert validate_record(PAIR).weight is None and "weight" not in validate_record(PAIR).to_json()
    record = validate_record({**PAIR, "weight": 0.25})
    assert record.weight == 0.25 and record.to_json()["weight"] == 0.25
    assert validate_record({**PAIR, "weight": 2}).weight == 2.0
    assert validate_record({**PAIR, "weight": 1e-6}).weight == 1e-6 and validate_record({**PAIR, "weight": 1e6})
    for bad, why in [(0, "finite number > 0"), (-0.5, "finite number > 0"), (math.nan, "finite number > 0"),
                     (math.inf, "finite number > 0"), ("0.5", "expected a number"), (True, "expected a number"),
                     (5e-324, "between 1e-06 and 1e"), (1e-7, "between 1e-06"), (1e308, "between 1e-06 and 1e"),
                     (1e7, "between 1e-06 and 1e\\+06"), (10**400, "between 1e-06 and 1e\\+06, got '1000")]:  # pass 15 B #6/#7: float32 rounds them to 0 or inf
        with pytest.raises(DataError, match=why) as err:
            validate_record({**PAIR, "weight": bad}, "pairs.jsonl", 3)
        assert (err.value.line, err.value.field) == (3, "weight")


def test_prompts_cover_the_project_page():
    """people-robots/VideoSAVi index.html: questions on "temporal sequences (event order, causality, state
    changes)"; the critique finds "inconsistencies, factual errors (spatial or temporal), hallucinations, or
    omissions"."""
    prompts = default_prompts("videosavi")
    temporal = prompts["temporal_questions"].lower()
    assert all(w in temporal for w in ("order of events", "causality", "state changes"))
    spatial = prompts["spatial_questions"].lower()
    assert all(w in spatial for w in ("positions relative", "visual details"))
    critique = prompts["critique"].lower()
    assert all(w in critique for w in ("inconsistencies", "spatial errors", "temporal errors", "hallucinations",
                                       "omissions", "cause and effect"))


def test_videosavi_recipe_learning_rate_and_iterations():
    path = RECIPES / "llava_onevision_7b_videosavi.yaml"
    data = yaml.safe_load(path.read_text())
    assert float(data["train"]["learning_rate"]) == 5e-6  # RRPO's LoRA rate for this adapter, not full-FT DPO's
    assert int(data["align"]["iterations"]) == 4  # eval.sh: logs_internvl_iter4_savi
