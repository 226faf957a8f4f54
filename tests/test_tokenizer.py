"""The tiny model's word-level tokenizer: every text of the synthetic skills round-trips exactly,
answers are a few tokens, numbers are digits (what the number-token probe counts)."""
import pytest

from lmmcl.data.broad_skills import BROAD_SKILLS
from lmmcl.data.vision_skills import VISION_SKILLS
from lmmcl.data.skills import SKILLS, generate, vocabulary_texts
from lmmcl.models.tiny import TinySpec, build_tokenizer, word_vocabulary


@pytest.mark.parametrize("kind", ["word", "word_broad", "word_vision", "word_broad_vision"])
def test_every_skill_text_round_trips_in_few_tokens(kind):
    tok = build_tokenizer(kind)
    broad, vision = "broad" in kind, "vision" in kind
    assert tok.unk_token_id not in tok(" ".join(vocabulary_texts(broad, vision)), add_special_tokens=False)["input_ids"]
    skills = set(SKILLS) - (set() if broad else set(BROAD_SKILLS)) - (set() if vision else set(VISION_SKILLS))
    for skill in sorted(skills):
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


def test_vision_skills_leave_the_other_vocabularies_alone():
    """The vision prior's words are only in word_vision's vocabulary: word and word_broad keep theirs
    (and so the default's and config/tiny_broad.yaml's numbers)."""
    word, broad = build_tokenizer("word").get_vocab(), build_tokenizer("word_broad").get_vocab()
    vision = build_tokenizer("word_vision").get_vocab()
    assert len(word) == 217 and len(broad) == 378 and set(word) < set(vision)
    assert " coarse" in vision and " coarse" not in word and " coarse" not in broad
    assert " hollow" not in vision  # the broad prior's words stay out
    both = build_tokenizer("word_broad_vision").get_vocab()  # the two priors combined: a union
    assert set(both) == set(broad) | set(vision)


def test_vision_skills_draw_what_they_ask():
    """Each vision prior skill answers from its picture: the stripes' direction is where the image
    varies, the letter is drawn, the hand points where the answer says; the targets' pictures keep
    their bytes (the drawing helpers they share were factored out of syn_texture and syn_clock)."""
    import hashlib

    import numpy as np

    assert set(VISION_SKILLS) == {"syn_vis_fineness", "syn_vis_stripes", "syn_vis_letter", "syn_vis_hand"}
    for rec in generate("syn_vis_stripes", "train", 20, seed=1):
        a = np.asarray(rec["image"].convert("L"), dtype=float)
        across = a.std(axis=1).mean() < a.std(axis=0).mean()  # rows are uniform when stripes run across
        assert rec["answer"] == ("across" if across else "down"), rec["id"]
    for rec in generate("syn_vis_hand", "train", 20, seed=1):
        a = np.asarray(rec["image"])
        blue = (a[..., 2] > 150) & (a[..., 0] < 100)  # the hand
        ys, xs = np.nonzero(blue)
        dy, dx = ys.mean() - 16, xs.mean() - 16
        way = ("down" if dy > 0 else "up") if abs(dy) > abs(dx) else ("right" if dx > 0 else "left")
        assert rec["answer"] == f"It points {way}.", rec["id"]
    answers = {r["answer"] for r in generate("syn_vis_letter", "train", 200, seed=1)}
    assert len(answers) == 26
    assert {r["answer"] for r in generate("syn_vis_fineness", "train", 50, seed=1)} == {"fine", "coarse"}
    h = hashlib.sha256()
    for skill in ("syn_texture", "syn_clock"):
        for rec in generate(skill, "train", 300, seed=0):
            h.update(rec["image"].tobytes())
    assert h.hexdigest()[:16] == "b6f9ce7f843c22aa"  # before the helpers were factored out (e2ead56)
