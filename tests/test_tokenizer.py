"""The tiny model's word-level tokenizer: every text of the synthetic skills round-trips exactly,
answers are a few tokens, numbers are digits (what the number-token probe counts)."""
import pytest

from lmmcl.data.broad_skills import BROAD_SKILLS
from lmmcl.data.synthetic import SKILLS, generate, vocabulary_texts
from lmmcl.models.tiny import TinySpec, build_tokenizer, word_vocabulary


@pytest.mark.parametrize("kind", ["word", "word_broad"])
def test_every_skill_text_round_trips_in_few_tokens(kind):
    tok = build_tokenizer(kind)
    broad = kind == "word_broad"
    assert tok.unk_token_id not in tok(" ".join(vocabulary_texts(broad)), add_special_tokens=False)["input_ids"]
    for skill in SKILLS if broad else set(SKILLS) - set(BROAD_SKILLS):
        for rec in generate(skill, "test", 20, seed=5, image_size=8):
            for text in (rec["question"], " " + rec["answer"]):
                ids = tok(text, add_special_tokens=False)["input_ids"]
                assert tok.decode(ids, skip_special_tokens=True) == text
            # an answer is a word or a few: one token per word, digit and punctuation mark
            assert len(tok(" " + rec["answer"], add_special_tokens=False)["input_ids"]) <= 9
    assert tok.convert_ids_to_tokens(tok(" 05:30", add_special_tokens=False)["input_ids"]) == [" 0", "5", ":", "3", "0"]


def test_unknown_words_and_both_tokenizers():
    tok = build_tokenizer("word")
    ids = tok(" zebra", add_special_tokens=False)["input_ids"]
    assert ids == [tok.unk_token_id]
    # pieces of each text, and of the text after a space (an answer follows "ASSISTANT:")
    assert word_vocabulary(["Hi there."]) == sorted({"Hi", " Hi", " there", "."})
    byte = build_tokenizer("byte")
    assert byte.decode(byte(" zebra", add_special_tokens=False)["input_ids"]) == " zebra"
    with pytest.raises(ValueError, match="model.tiny.tokenizer: unknown tokenizer 'bpe'"):
        TinySpec(tokenizer="bpe")


def test_broad_skills_leave_the_default_vocabulary_alone():
    """The default's word vocabulary has none of the broad prior's own words (so its model and
    numbers are those of benchmarks/reference/tiny_default_scores.csv); word_broad extends it."""
    word, broad = build_tokenizer("word").get_vocab(), build_tokenizer("word_broad").get_vocab()
    assert len(BROAD_SKILLS) == 16
    assert " hollow" not in word and " hollow" in broad and len(broad) > len(word)
    assert not any(t for t in vocabulary_texts() if "hollow" in t or "The last word" in t)
