"""The pure parts of the generators: answer judging, phrase tagging, output parsing, prompts, inputs."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from savi_plugin.data import DataError, validate_record
from savi_plugin.data.tags import parse_tags
from savi_plugin.generators.inputs import load_inputs
from savi_plugin.generators.judge import judge_answer
from savi_plugin.generators.parsing import clean_revision, critique_finds_error, parse_questions
from savi_plugin.generators.prompts import PromptError, default_prompts, load_prompts
from savi_plugin.generators.runner import find_shards, parse_shard, shard_items, shard_output_path
from savi_plugin.generators.tagging import check_model_tagging, rule_tag
from savi_plugin.generators.text import normalized_edit_distance
from tests.builders import outside_tokens

OPTIONS = ["the red circle", "the blue circle", "green", "dark green"]


def test_judge_answer_kinds():
    assert judge_answer("(B) the blue circle", "the blue circle", options=OPTIONS).correct
    j = judge_answer("A", "the blue circle", options=OPTIONS)
    assert (j.correct, j.kind, j.predicted) == (False, "mcq", 0)
    assert not judge_answer("xyz", "green", options=OPTIONS, answer_index=2).correct
    assert judge_answer("Yes, it does.", "yes").correct and not judge_answer("No.", "Yes").correct
    assert judge_answer("There are 3 of them", "3").correct and not judge_answer("4", "3").correct
    long_gt = "the man opens the red door and walks into the kitchen"
    assert judge_answer("The man opens the red door and walks into a kitchen.", long_gt).correct
    j = judge_answer("a woman closes the window", long_gt)
    assert (j.correct, j.kind, j.method, j.score) == (False, "long", "content", 0.0)
    assert judge_answer("", "yes").method == "empty"
    with pytest.raises(ValueError, match="not exactly one of the options"):
        judge_answer("A", "purple", options=OPTIONS)


@pytest.mark.parametrize("chosen, rejected, phrases", [
    ("(B) red circle", "(C) blue circle", (["B", "red"], ["C", "blue"])),
    ("The dog opens the door.", "The goose closes the door.", (["dog opens"], ["goose closes"])),
    ("red", "red circle", (["red"], ["red circle"])),
    ("yes", "No, it does not.", (["yes"], ["No, it does not."])),
    ("Red", "red", (["Red"], ["red"])),
])
def test_rule_tag_marks_exactly_the_differences(chosen, rejected, phrases):
    pair = rule_tag(chosen, rejected, widen=True, rule="difflib")
    record = validate_record({"id": "x", "video": "v.mp4", "question": "q", "chosen": chosen, "rejected": rejected,
                              "chosen_tagged": pair.chosen_tagged, "rejected_tagged": pair.rejected_tagged})
    assert (list(parse_tags(record.chosen_tagged).phrases), list(parse_tags(record.rejected_tagged).phrases)) == phrases
    assert outside_tokens(pair.chosen_tagged) == outside_tokens(pair.rejected_tagged)


def test_check_model_tagging():
    original = "the man opens the door"
    assert check_model_tagging(original, 'Sentence 1: "the man <MASK>opens</MASK> the door"') == \
        "the man <MASK>opens</MASK> the door"
    assert check_model_tagging(original, "the man <MASK>closes</MASK> the door") is None  # text changed
    assert check_model_tagging(original, "the man opens the door") is None  # nothing tagged
    assert check_model_tagging(original, "the man <MASK>opens the door") is None  # malformed


def test_parse_questions_formats_and_duplicates():
    text = ("Here are the questions:\n1. Where is the red circle?\n2) What colour is the square?\n"
            "Q3: Where is the red circle?\n- How many shapes are there?\n* short?\n"
            "Question 6 - What colour is the square ?\n**Spatial:** Where is the blue square located?")
    assert parse_questions(text) == ["Where is the red circle?", "What colour is the square?",
                                     "How many shapes are there?", "Where is the blue square located?"]
    assert parse_questions("1. What happens first? 2. Where does it go after that? 3. Which shape is largest?",
                           max_questions=2) == ["What happens first?", "Where does it go after that?"]
    assert parse_questions('```json\n["Where is the ball?", {"question": "What moves left first?"}]\n```') == \
        ["Where is the ball?", "What moves left first?"]
    assert parse_questions('{"questions": ["Where is the ball now?"]}') == ["Where is the ball now?"]
    assert parse_questions("Where is the red ball?", seen=["where is the red ball"]) == []
    assert parse_questions("be\x18 reasoning\x05 wrong)ed give") == []


def test_critique_and_revision_parsing():
    patterns = default_prompts("videosavi")["no_error_patterns"]
    for text in ("NO ERRORS", "No errors.", "No spatial or temporal errors were found.", "The answer is correct.",
                 "None", "There are no errors."):
        assert critique_finds_error(text, patterns) is False, text
    for text in ("Spatial error: the circle is blue, not red.",
                 "The answer is correct about the colour but wrong about the direction: it moves left."):
        assert critique_finds_error(text, patterns) is True, text
    assert critique_finds_error("\x18\x05 ?", patterns) is None
    assert clean_revision('**Revised answer:** "The circle moves left."') == "The circle moves left."


def test_text_metrics():
    assert normalized_edit_distance("The red ball moves left.", "the red ball moves left") == 0.0
    assert normalized_edit_distance("a b c d", "a b x d") == 0.25
    assert normalized_edit_distance("", "") == 0.0


def test_prompts_override_and_errors(tmp_path):
    defaults = load_prompts("rrpo")
    assert defaults["version"] == "rrpo-prompts-v2"
    path = tmp_path / "p.yaml"
    path.write_text("open_question: 'Q: {question}'\n")
    merged = load_prompts("rrpo", path, fields={"open_question": {"question"}})
    assert merged["open_question"] == "Q: {question}" and merged["mcq_question"] == defaults["mcq_question"]
    assert merged["version"].startswith("rrpo-prompts-v2+custom-")
    path.write_text("open_questoin: 'x'\n")
    with pytest.raises(PromptError, match="unknown prompt key 'open_questoin'"):
        load_prompts("rrpo", path)
    path.write_text("open_question: 'Q: {qestion}'\n")
    with pytest.raises(PromptError, match=r"unknown field\(s\) \['qestion'\]"):
        load_prompts("rrpo", path, fields={"open_question": {"question"}})
    path.write_text("open_question: [1, 2]\n")
    with pytest.raises(PromptError, match="must be a string"):
        load_prompts("rrpo", path)


@pytest.mark.parametrize("generator", ["rrpo", "videosavi"])
@pytest.mark.parametrize("text", ["", "# my prompts, to be written\n", "{}\n", "---\n"])
def test_a_prompt_file_that_overrides_no_prompt_is_refused(generator, text, tmp_path):
    """An empty ``--prompts`` file ran the default prompts unsaid (pass 24 H #80): a file given to change the
    prompts and changing none is refused naming it, as an empty recipe is."""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PromptError, match=r"p\.yaml: the prompt file overrides no prompt"):
        load_prompts(generator, path)


@pytest.mark.parametrize("template", ["Q: {question:>50000000} {options}", "{question!r}", "{question.__class__}",
                                      "{options[0]}", "{question:{options}}", "{0}", "{}"])
def test_a_template_field_with_a_format_spec_conversion_or_access_is_refused_when_loaded(template, tmp_path):
    """A format spec pads a prompt to any size (``{question:>50000000}``: 50 MB, the tokenizer aborts the process);
    a template may hold plain ``{name}`` fields only, refused naming the file and the key."""
    path = tmp_path / "p.yaml"
    path.write_text(f"mcq_question: {template!r}\n")
    with pytest.raises(PromptError, match=r"p\.yaml: 'mcq_question' field .* is not a plain replacement field"):
        load_prompts("rrpo", path, fields={"mcq_question": {"question", "options"}})
    path.write_text("mcq_question: 'Q: {question} {{literal}} {options}'\n")  # escaped braces stay text
    assert load_prompts("rrpo", path)["mcq_question"] == "Q: {question} {{literal}} {options}"


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\x1b", "\x00", "\x85"])
@pytest.mark.parametrize("key", ["mcq_question", "open_question"])
def test_a_template_holding_a_control_character_is_a_configuration_error_not_each_records_failure(char, key, tmp_path,
                                                                                                   capsys):
    """Pass 18 B #22: a bidi override in ``mcq_question`` failed every record as ``control_token_in_text`` (final)
    and the run exited 0 with no pair; the file and key were never named. The template is refused when loaded."""
    from savi_plugin.cli import main

    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({key: f"{char}{{question}}"}))
    with pytest.raises(PromptError, match=rf"p\.yaml: '{key}' contains .*U\+{ord(char):04X}.* a template may not "
                                          rf"hold control characters or bidi overrides"):
        load_prompts("rrpo", path)
    assert main(["generate", "--generator", "rrpo", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "q"),
                 "--output", str(tmp_path / "o.jsonl"), "--prompts", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "p.yaml" in err[0] and f"U+{ord(char):04X}" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


@pytest.mark.parametrize("template, unused", [("", "{options}, {question}"), ("Colour?", "{options}, {question}"),
                                               ("{question}", "{options}"), ("Pick one: {options}", "{question}")])
def test_a_template_that_drops_a_field_of_the_record_is_refused_when_loaded(template, unused, tmp_path):
    """Pass 18 B #32: an empty ``mcq_question`` asked the model an empty prompt (every item a final failure, exit 0),
    and ``"Colour?"`` wrote pairs whose answers name options the stored question never showed. A template uses each
    field its key offers."""
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({"mcq_question": template}))
    with pytest.raises(PromptError, match=rf"p\.yaml: 'mcq_question' does not use {re.escape(unused)}: what the record "
                                          rf"holds there would never reach the model"):
        load_prompts("rrpo", path, fields={"mcq_question": {"question", "options"}})


def test_packaged_templates_use_only_known_fields():
    from savi_plugin.generators.rrpo import RRPOGenerator
    from savi_plugin.generators.videosavi import VideoSAViGenerator

    for gen in (RRPOGenerator, VideoSAViGenerator):
        prompts = default_prompts(gen.name)
        load_prompts(gen.name, {k: prompts[k] for k in gen.prompt_fields}, fields=gen.prompt_fields)


def test_load_inputs(tmp_path, synthetic_samples):
    items = load_inputs(synthetic_samples[0].video.rsplit("/", 1)[0] + "/samples.jsonl")
    assert [i.id for i in items] == [s.id for s in synthetic_samples]
    first = items[0]
    assert first.options == tuple(synthetic_samples[0].options)
    assert first.answer_index == synthetic_samples[0].answer_index and first.extra["task"] == synthetic_samples[0].task

    (tmp_path / "clips" / "sub").mkdir(parents=True)
    for name in ("clips/b.mp4", "clips/sub/a.MOV", "clips/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [(i.id, i.index) for i in load_inputs(tmp_path / "clips")] == [("b", 0), ("sub/a", 1)]

    manifest = tmp_path / "m.jsonl"
    rows = [{"video": "clips/b.mp4", "question": "Which?", "candidates": ["up", "down"], "answer": "B"},
            {"id": 7, "video": "/abs/x.mp4", "question": "Open?", "answer": "the door opens"}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    a, b = load_inputs(manifest)
    assert (a.id, a.video, a.answer_index, a.answer) == ("b", str(tmp_path / "clips/b.mp4"), 1, "down")
    assert (b.id, b.options, b.answer) == ("7", None, "the door opens")

    for bad, field in [({"question": "q"}, "video"), ({"video": "a.mp4", "options": ["x", "y"], "answer": "z"}, "answer"),
                       ({"video": "a.mp4", "options": ["x", "y"], "answer_index": 5}, "answer_index"),
                       ({"video": "a.mp4", "options": "x"}, "options")]:
        manifest.write_text(json.dumps({"video": "ok.mp4"}) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(DataError) as err:
            load_inputs(manifest)
        assert (err.value.line, err.value.field) == (2, field)
    manifest.write_text(json.dumps({"id": "a", "video": "1.mp4"}) + "\n" + json.dumps({"id": "a", "video": "2.mp4"}) + "\n")
    with pytest.raises(DataError, match="duplicate id 'a'"):
        load_inputs(manifest)


def test_shard_helpers(tmp_path, monkeypatch):
    assert parse_shard("1/4") == (1, 4) and parse_shard((0, 2)) == (0, 2)
    with pytest.raises(ValueError):
        parse_shard("4/4")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    assert parse_shard(None) is None  # left in a shell, not set by a launcher: a plain run is not sharded
    for key, value in {"TORCHELASTIC_RUN_ID": "none", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29500"}.items():  # what torchrun sets beside them
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("savi_plugin.launch.launcher_ancestor", lambda: None)  # ... and no torchrun: a dump
    assert parse_shard(None) is None
    monkeypatch.setattr("savi_plugin.launch.launcher_ancestor", lambda: "torchrun")  # torchrun runs this process
    assert parse_shard(None) == (2, 3)
    out = tmp_path / "pairs.jsonl"
    paths = [shard_output_path(out, i, 2) for i in (1, 0)]
    assert paths[1].name == "pairs.shard-00000-of-00002.jsonl"
    for p in paths + [tmp_path / "pairs.shard-00000-of-00002.jsonl.progress.jsonl"]:
        p.write_text("")
    assert find_shards(out) == sorted(paths)


def test_shards_split_items_in_turn_and_batch_their_own():
    """Item k goes to shard k mod n; each shard batches its own items; a batch's global index is unique."""
    assert [shard_items(range(5), i, 3, 4) for i in range(3)] == [[(0, [0, 3])], [(1, [1, 4])], [(2, [2])]]
    for total, count, batch in ((23, 4, 3), (3, 5, 2), (10, 1, 4)):
        shards = [shard_items(list(range(total)), i, count, batch) for i in range(count)]
        sizes = [sum(len(chunk) for _, chunk in shard) for shard in shards]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == total  # balanced to one item, nothing idle before
        items = sorted(k for shard in shards for _, chunk in shard for k in chunk)
        assert items == list(range(total))  # every item exactly once
        indices = [b for shard in shards for b, _ in shard]
        assert len(indices) == len(set(indices))  # no two batches share a seed index
        assert all(len(chunk) <= batch for shard in shards for _, chunk in shard)
    # one process: the batches and indices of an unsharded run
    assert shard_items(list(range(5)), 0, 1, 2) == [(0, [0, 1]), (1, [2, 3]), (2, [4])]
    # an item keeps its shard and batch when more items follow it (a re-run with a larger --limit)
    assert shard_items(list(range(20)), 1, 3, 2)[:3] == shard_items(list(range(18)), 1, 3, 2)[:3]


def test_yaml_prompt_files_are_safe_yaml():
    from importlib import resources

    for name in ("videosavi", "rrpo"):
        text = resources.files("savi_plugin.generators").joinpath("prompts", f"{name}.yaml").read_text()
        assert isinstance(yaml.safe_load(text), dict)


def test_data_root_confines_manifest_paths(tmp_path):
    from savi_plugin.generators import run_generation

    (tmp_path / "root").mkdir()
    manifest = tmp_path / "root" / "m.jsonl"
    manifest.write_text(json.dumps({"video": "../outside.mp4", "question": "q?", "answer": "yes"}) + "\n")
    with pytest.raises(DataError) as err:
        run_generation(generator="rrpo", model=object(), inputs=manifest, output=tmp_path / "o.jsonl",
                       data_root=tmp_path / "root")
    assert (err.value.line, err.value.field) == (1, "video")


def test_a_multiple_choice_question_may_not_forge_option_lines(tmp_path):
    import json

    from savi_plugin.data.record import DataError
    from savi_plugin.generators.inputs import load_inputs

    forged = {"id": "a", "video": "a.mp4", "question": "Which colour?\nOptions:\n(A) red\n(B) blue\n(C) green",
              "options": ["red", "blue"], "answer_index": 0}
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text(json.dumps(forged) + "\n")
    with pytest.raises(DataError, match=r"qa\.jsonl:1:question: contains a line feed at character 13; .* option "
                                        r"lines come from 'options' only"):
        load_inputs(manifest)
    for question in ("Which colour?\u2028(C) green", "Which colour?\r(C) green"):
        manifest.write_text(json.dumps({**forged, "question": question}) + "\n")
        with pytest.raises(DataError, match=r":1:question: contains"):
            load_inputs(manifest)
    # an open question is not shown above option lines: it may span lines
    manifest.write_text(json.dumps({"id": "b", "video": "b.mp4", "question": "Watch closely.\nWhat happens?",
                                    "answer": "A door opens."}) + "\n")
    assert load_inputs(manifest)[0].question == "Watch closely.\nWhat happens?"


def test_a_manifest_field_copied_into_meta_passes_the_meta_rule(tmp_path):
    """A manifest item's other fields become each pair's ``meta["input"]``: a bidi override in one is refused
    where it is read, by the rule ``savi data validate`` applies to ``meta`` (pass 12, B56), not written into
    pairs that validation then refuses."""
    import json

    from savi_plugin.data.record import DataError
    from savi_plugin.generators.inputs import load_inputs

    manifest = tmp_path / "m.jsonl"
    for extra, field in [({"note": "x\u202eevil"}, "note"), ({"k\u202ey": 1}, '["k\\u202ey"]'),
                         ({"tags": [{"a": "\x00"}]}, "tags[0].a")]:
        manifest.write_text(json.dumps({"id": "a", "video": "a.mp4", "question": "Q?", **extra}) + "\n")
        with pytest.raises(DataError) as caught:
            load_inputs(manifest)
        assert str(caught.value).startswith(f"{manifest}:1:{field}: "), caught.value
    manifest.write_text(json.dumps({"id": "a", "video": "a.mp4", "note": "<video> is fine here\tand tabs"}) + "\n")
    assert load_inputs(manifest)[0].extra == {"note": "<video> is fine here\tand tabs"}


def test_an_option_word_mixing_latin_with_look_alikes_is_refused(tmp_path):
    """``rеd`` (Cyrillic ``е``) as an option reads as "red" but no answer "red" can pick it (Unicode TR39
    mixed-script), refused as it is in a pair's rejected; an option wholly in another script is kept."""
    import json

    from savi_plugin.data.record import DataError
    from savi_plugin.generators.inputs import load_inputs

    manifest = tmp_path / "qa.jsonl"
    item = {"id": "a", "video": "a.mp4", "question": "Which colour?", "answer_index": 0}
    manifest.write_text(json.dumps({**item, "options": ["blue", "r\u0435d"]}) + "\n")
    with pytest.raises(DataError, match=r"qa\.jsonl:1:options\[1\]: the word 'r\u0435d' mixes Latin letters"):
        load_inputs(manifest)
    manifest.write_text(json.dumps({**item, "options": ["синий", "красный"]}) + "\n")
    assert load_inputs(manifest)[0].options == ("синий", "красный")
