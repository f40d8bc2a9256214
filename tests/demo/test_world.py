"""The demo's world: a language prior in the warm-up set that the self-alignment and held-out sets break."""

from collections import Counter

import numpy as np

from savi_plugin.demo.world import PRIOR, group_of, make_world_set, render
from savi_plugin.video.synthetic import COLORS


def test_warmup_teaches_the_prior_and_heldout_breaks_it_half_the_time(tmp_path):
    warm = make_world_set(tmp_path / "w", "warmup", 24, seed=0)
    held = make_world_set(tmp_path / "h", "heldout", 24, seed=0)
    prior_items = [s for s in warm if "prior" in s.facts]
    assert prior_items and all(s.answer == PRIOR[s.facts["shape"]] for s in prior_items)
    # in the warm-up the subject of a prior question is hidden: only the shape word gives the answer away;
    # in the held-out set it is visible
    for kind in ("warmup", "heldout"):
        frames, _, _, _, facts = render(np.random.default_rng(0), "object_color", kind, 0)
        shows = (frames == np.array(COLORS[facts["color"]], dtype=np.uint8)).all(-1).any()
        assert shows == (kind == "heldout")
    groups = Counter(group_of(s) for s in held)
    fails = [s for s in held if s.facts.get("prior") == "fails"]
    assert groups[f"{fails[0].task}: prior fails"] == groups[f"{fails[0].task}: prior holds"] > 0
    for s in fails:  # the prior's answer is offered, and it is wrong
        assert s.answer != PRIOR[s.facts["shape"]] and PRIOR[s.facts["shape"]] in s.options
        assert s.options[s.answer_index] == s.answer


def test_sets_are_disjoint_and_deterministic(tmp_path):
    sets = {k: make_world_set(tmp_path / k, k, 30, seed=0) for k in ("warmup", "align", "heldout")}
    prints = [s.facts["fingerprint"] for samples in sets.values() for s in samples]
    assert len(set(prints)) == len(prints)
    again = make_world_set(tmp_path / "again", "heldout", 30, seed=0)
    assert [s.facts["fingerprint"] for s in again] == [s.facts["fingerprint"] for s in sets["heldout"]]
    assert [s.question for s in again] == [s.question for s in sets["heldout"]]
    # the manifest the rrpo generator reads names videos relative to its own folder
    line = (tmp_path / "heldout" / "samples.jsonl").read_text().splitlines()[0]
    assert '"video": "heldout_00000.mp4"' in line


def test_warmup_reads_colour_for_the_unnamed_shape_only(tmp_path):
    # "the shape" questions teach reading a visible subject's colour; the named-shape question keeps the prior
    sets = {k: make_world_set(tmp_path / k, k, 30, seed=0) for k in ("warmup", "align", "heldout")}
    unnamed = [s for s in sets["warmup"] if s.task == "shape_color"]
    assert len(unnamed) == 10 and all(s.question == "What is the color of the shape?" for s in unnamed)
    assert len({s.answer for s in unnamed}) > 3  # colours are not tied to the shape
    assert not any(s.task == "shape_color" for k in ("align", "heldout") for s in sets[k])
    frames, _, _, _, facts = render(np.random.default_rng(0), "shape_color", "warmup", 0)
    assert (frames == np.array(COLORS[facts["color"]], dtype=np.uint8)).all(-1).any()
