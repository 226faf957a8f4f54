"""A tiny, hub-free LLaVA of the native transformers class, built from a seeded config.

`LlavaForConditionalGeneration` (CLIP vision tower + Llama LLM) is the same class the real
LLaVA checkpoints load into, so recipes, training, saving and lmms-eval run the real code path;
only the sizes are small. The tokenizer is built in code, so nothing is downloaded: by default
word-level (`build_word_tokenizer`, a vocabulary of the synthetic skills' words, so an answer is one
or a few tokens and a forgotten skill answers with valid-but-wrong words, as a real LMM does), or
byte-level BPE without merges (one token per byte, `tokenizer: byte`), which reads any text.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<pad>", "</s>", "<s>", "<unk>", IMAGE_TOKEN, "<video>"]

# Handles both string content (lmms-eval simple path) and list content (chat path, our collator).
# transformers renders with trim_blocks, so literal newlines after tags are written as {{ '\n' }}.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model (config key `model.tiny`)."""

    hidden_size: int = 64
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_hidden_size: int = 64
    vision_intermediate_size: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    image_size: int = 32
    patch_size: int = 8
    max_position_embeddings: int = 512
    tokenizer: str = "word"  # word | word_broad | word_vision | word_broad_vision | byte (TOKENIZERS)

    def __post_init__(self):
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"model.tiny.tokenizer: unknown tokenizer {self.tokenizer!r}; allowed: {sorted(TOKENIZERS)}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "TinySpec":
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown model.tiny key(s) {unknown}; allowed: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**d)


def build_byte_tokenizer(specials: list[str], *, bos: str | None, eos: str, pad: str, unk: str | None,
                         extra_special_tokens: dict, chat_template: str, added: list[str] | None = None):
    """A byte-level BPE tokenizer without merges (one token per byte), built in code.

    `specials` come first in the vocabulary, then the 256 byte symbols; `added` (default: the
    values of `extra_special_tokens`) are marked special so they never split."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(list(added if added is not None else extra_special_tokens.values()))
    kw = {k: v for k, v in dict(bos_token=bos, eos_token=eos, unk_token=unk, pad_token=pad).items() if v}
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, extra_special_tokens=dict(extra_special_tokens), **kw)
    tok.chat_template = chat_template
    return tok


# Word-level pieces: a word with its leading space, one digit (numbers split into digits, as in
# Llama-3's and Qwen2's tokenizers), one punctuation mark (each with its leading space), or one
# whitespace character. Decoding concatenates the pieces (`Fuse`), so a decoded answer is
# byte-for-byte the trained text ("05:30", "There are 3 squares in this image.").
WORD_PIECES = r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]|\s"


def word_vocabulary(texts) -> list[str]:
    """Sorted pieces of `texts` (each also with a leading space: answers follow "ASSISTANT:")."""
    import re

    pieces: set[str] = set()
    for text in texts:
        pieces.update(re.findall(WORD_PIECES, text))
        pieces.update(re.findall(WORD_PIECES, " " + text))
    return sorted(pieces)


def build_word_tokenizer(texts=None, broad: bool = False, vision: bool = False):
    """A word-level tokenizer (`tokenizers` WordLevel behind a PreTrainedTokenizerFast) whose
    vocabulary is the special tokens plus the pieces of `texts` (default: every text the synthetic
    skills and the chat template can produce, `lmmcl.data.skills.vocabulary_texts`, with the
    broad prior's skills if `broad`, the vision prior's if `vision`). A piece outside the vocabulary
    becomes `<unk>`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if texts is None:
        from ..data.skills import vocabulary_texts

        texts = vocabulary_texts(broad, vision) + ["USER: ", "ASSISTANT: "]
    vocab = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
    for piece in word_vocabulary(texts):
        vocab.setdefault(piece, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PIECES), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.add_special_tokens([IMAGE_TOKEN, "<video>"])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        clean_up_tokenization_spaces=False,
        extra_special_tokens={"image_token": IMAGE_TOKEN, "video_token": "<video>"})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_byte_tokenizer_tiny():
    return build_byte_tokenizer(
        SPECIAL_TOKENS, bos="<s>", eos="</s>", unk="<unk>", pad="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN, "video_token": "<video>"},
        added=[IMAGE_TOKEN, "<video>"], chat_template=CHAT_TEMPLATE,
    )


TOKENIZERS = {"word": build_word_tokenizer,
              # word + the broad instruction prior's words (lmmcl.data.broad_skills, config/tiny_broad.yaml)
              "word_broad": lambda: build_word_tokenizer(broad=True),
              # word + the vision prior's words (lmmcl.data.vision_skills, config/tiny_vision.yaml)
              "word_vision": lambda: build_word_tokenizer(vision=True),
              # word + both priors' words (config/tiny_priors.yaml: the two priors combined)
              "word_broad_vision": lambda: build_word_tokenizer(broad=True, vision=True),
              "byte": build_byte_tokenizer_tiny}


def build_tokenizer(kind: str = "word"):
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tiny tokenizer {kind!r}; allowed: {sorted(TOKENIZERS)}")
    return TOKENIZERS[kind]()


def build_processor(spec: TinySpec, tokenizer=None):
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = tokenizer or build_tokenizer(spec.tokenizer)
    image_processor = CLIPImageProcessorPil(  # PIL backend: torchvision is not installed
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_llava(spec: TinySpec, seed: int = 0):
    """Return (model, processor): a randomly initialised LlavaForConditionalGeneration."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tokenizer = build_tokenizer(spec.tokenizer)
    processor = build_processor(spec, tokenizer)
    ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
        **ids,
    )
    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden_size,
        intermediate_size=spec.vision_intermediate_size,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=spec.vision_hidden_size,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=(spec.image_size // spec.patch_size) ** 2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    for key, value in ids.items():
        setattr(model.generation_config, key, value)
    model.config.lmmcl_tiny_spec = asdict(spec)
    return model, processor


def save_tiny_llava(out_dir: str | Path, spec: TinySpec, seed: int = 0) -> Path:
    from ..atomic import atomic_dir

    model, processor = build_tiny_llava(spec, seed)
    out = Path(out_dir)
    with atomic_dir(out) as tmp:  # a killed save leaves no half-written folder under `out`
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return out
