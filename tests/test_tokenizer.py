"""The tiny model's word-level tokenizer: every text of the synthetic skills round-trips exactly,
answers are a few tokens, numbers are digits (what the number-token probe counts)."""
import pytest

from lmmcl.data.synthetic import SKILLS, generate, vocabulary_texts
from lmmcl.models.tiny import TinySpec, build_tokenizer, word_vocabulary


def test_every_skill_text_round_trips_in_few_tokens():
    tok = build_tokenizer("word")
    assert tok.unk_token_id not in tok(" ".join(vocabulary_texts()), add_special_tokens=False)["input_ids"]
    for skill in SKILLS:
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
