"""Phrase ids from <MASK> tags via offsets, on a real byte-level BPE tokenizer trained here (no hub)."""

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from savi_plugin.data.tags import TagError, parse_tags
from savi_plugin.training.phrase_ids import (
    NoTaggedPhraseError,
    phrase_ids_for_response,
    phrase_ids_from_offsets,
)

CORPUS = [
    "The man opens the door and walks into the kitchen.",
    "Two men are fishing on a boat, not swimming in the sea.",
    "A dog chases a goose across the field while children play volleyball on the beach.",
    "The answer is (B). The woman closes the red box after she puts the ball inside.",
    "The shoe was untied, so he tied it again before running.",
] * 3
END_OF_TURN = "<|im_end|>\n"


def build_tokenizer(trim_offsets):
    """A small byte-level BPE (the Qwen2 / GPT-2 family of tokenizers), trained on CORPUS."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if trim_offsets:
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=340, min_frequency=2, special_tokens=["<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>")


@pytest.fixture(scope="module", params=[False, True], ids=["offsets-with-space", "trimmed-offsets"])
def tokenizer(request):
    return build_tokenizer(request.param)


def expected_ids(tokenizer, input_ids, text, spans):
    """Independent reference: character ranges from decoding each token (byte-level BPE is lossless)."""
    ranges, position = [], 0
    for token_id in input_ids:
        piece = tokenizer.decode([token_id])
        ranges.append((position, position + len(piece)))
        position += len(piece)
    assert tokenizer.decode(input_ids) == text
    ids = []
    for start, end in ranges:
        hit = [k for k, (s, e) in enumerate(spans, 1) if start < e and end > s]
        ids.append(hit[0] if hit else 0)
    return ids


def tagged_text(tokenizer, input_ids, phrase_ids, k):
    return tokenizer.decode([t for t, p in zip(input_ids, phrase_ids) if p == k])


@pytest.mark.parametrize("tagged", [
    "The man <MASK>opens</MASK> the door.",                          # leading space inside the token
    "<MASK>Two men</MASK> are fishing on a boat.",                   # tag at the start
    "The dog chases a <MASK>goose</MASK>",                           # tag at the end
    "The answer is <MASK>B</MASK>, the red box.",                    # punctuation right after
    "A <MASK>dog</MASK> chases a <MASK>goose</MASK> on the <MASK>field</MASK>.",  # several phrases
    "The woman <MASK> closes </MASK> the <MASK>red box</MASK>.",     # whitespace inside the tags
])
def test_word_aligned_phrases_decode_to_the_phrase(tokenizer, tagged):
    parsed = parse_tags(tagged)
    input_ids, ids = phrase_ids_for_response(tokenizer, tagged)
    assert input_ids == tokenizer(parsed.text, add_special_tokens=False)["input_ids"]
    assert ids == expected_ids(tokenizer, input_ids, parsed.text, parsed.spans)
    for k, phrase in enumerate(parsed.phrases, 1):
        # the tagged tokens are exactly the phrase (a leading space belongs to byte-level word tokens)
        assert tagged_text(tokenizer, input_ids, ids, k).strip() == phrase
        positions = [i for i, p in enumerate(ids) if p == k]
        assert positions == list(range(positions[0], positions[-1] + 1)), "a phrase is one contiguous run"
    assert set(ids) == set(range(len(parsed.spans) + 1)) - ({0} if all(ids) else set())


def test_token_straddling_the_phrase_end_is_in_the_phrase(tokenizer):
    # this BPE learned ")." as one token (from "(B)." in the corpus): it holds part of the phrase, so it is in
    tagged = "The answer is <MASK>(B)</MASK>."
    parsed = parse_tags(tagged)
    input_ids, ids = phrase_ids_for_response(tokenizer, tagged)
    assert ids == expected_ids(tokenizer, input_ids, parsed.text, parsed.spans)
    assert tokenizer.convert_ids_to_tokens(input_ids)[-1] == ")."
    assert tagged_text(tokenizer, input_ids, ids, 1).strip() == "(B)."


def test_phrase_that_splits_a_word_tags_the_containing_tokens(tokenizer):
    tagged = "The shoe was un<MASK>tie</MASK>d again."
    parsed = parse_tags(tagged)
    input_ids, ids = phrase_ids_for_response(tokenizer, tagged)
    assert ids == expected_ids(tokenizer, input_ids, parsed.text, parsed.spans)
    tagged_piece = tagged_text(tokenizer, input_ids, ids, 1)
    assert "tie" in tagged_piece and tagged_piece.strip() in " untied"
    # nothing outside the word is tagged
    assert "again" not in tagged_piece and "was" not in tagged_piece


def test_end_of_turn_is_tokenized_with_the_response_but_never_tagged(tokenizer):
    tagged = "The man <MASK>closes</MASK> the door"
    input_ids, ids = phrase_ids_for_response(tokenizer, tagged, end_of_turn=END_OF_TURN)
    text = parse_tags(tagged).text + END_OF_TURN
    assert input_ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert eot in input_ids and ids[input_ids.index(eot)] == 0 and ids[-1] == 0
    assert tagged_text(tokenizer, input_ids, ids, 1).strip() == "closes"


def test_non_ascii_phrase(tokenizer):
    tagged = "The café sells a <MASK>crème brûlée</MASK> today."
    parsed = parse_tags(tagged)
    input_ids, ids = phrase_ids_for_response(tokenizer, tagged)
    assert tagged_text(tokenizer, input_ids, ids, 1).strip() == "crème brûlée"
    untagged = tokenizer.decode([t for t, p in zip(input_ids, ids) if p == 0])
    assert " ".join(untagged.split()) == "The café sells a today."  # a lone space token may stay untagged
    assert len(ids) == len(input_ids) and parsed.text == tokenizer.decode(input_ids)


def test_no_tagged_phrase_is_reported(tokenizer):
    with pytest.raises(NoTaggedPhraseError, match="no <MASK>"):
        phrase_ids_for_response(tokenizer, "The man opens the door.")
    with pytest.raises(TagError):
        phrase_ids_for_response(tokenizer, "The man <MASK>opens the door.")


def test_needs_a_fast_tokenizer():
    with pytest.raises(TypeError, match="fast tokenizer"):
        phrase_ids_for_response(object(), "a <MASK>b</MASK>")


def test_offsets_rule_is_pure():
    spans = [(2, 5), (6, 8)]
    offsets = [(0, 1), (1, 5), (5, 6), (6, 7), (7, 9), (0, 0), (9, 10)]
    assert phrase_ids_from_offsets(offsets, spans) == [0, 1, 0, 2, 2, 0, 0]
    # one token covering two phrases gets the first; an empty-range token is tagged only strictly inside
    assert phrase_ids_from_offsets([(0, 2), (2, 2)], [(0, 1), (1, 2)]) == [1, 0]
    assert phrase_ids_from_offsets([(0, 0), (2, 2), (3, 3), (5, 5)], [(2, 5)]) == [0, 0, 1, 0]
    assert phrase_ids_from_offsets([], spans) == []
