"""`smolvlm`: SmolVLMForConditionalGeneration (SigLIP + SmolLM2, the Idefics3 lineage).

Default checkpoint HuggingFaceTB/SmolVLM2-2.2B-Instruct (SigLIP-so400m at 384 px + SmolLM2-1.7B).
Idefics3's layout, not LLaVA's (transformers `models/smolvlm/modeling_smolvlm.py`): the LLM is
`model.text_model`, the vision tower `model.vision_model` (SigLIP layers with their own
`self_attn.q_proj...`), the projector `model.connector` (pixel shuffle + one bias-free linear,
`modality_projection.proj`). No image newline. A turn is closed by `<end_of_utterance>`.
Roles: registry/families.yaml.
"""
from .tiny_parts import seeded_model, text_sizes, token_ids

# SmolVLM's chat template, verbatim: `DEFAULT_CHAT_TEMPLATE` of transformers `models/smolvlm/processing_smolvlm.py`,
# the SmolVLM2 checkpoints' template with its video branch. A rendered answer follows "Assistant:"
# with a space, the generation prompt ends at "Assistant:", so the trained span starts with that space.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<global-img>",
            "<image>", "<video>"]


def build_tiny(seed: int = 0, image_size: int = 32, patch_size: int = 8, hidden: int = 64, layers: int = 2):
    """(model, processor): a randomly initialised SmolVLMForConditionalGeneration; one 32 px
    image (no splitting) is (32/8)^2 / 2^2 = 4 image tokens after the pixel shuffle."""
    from transformers import LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMVisionConfig
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    from ..processors import SmolVLMImageOnlyProcessor
    from ..tiny import build_byte_tokenizer
    from .tiny_parts import vision_sizes

    tok = build_byte_tokenizer(
        SPECIALS, bos="<|im_start|>", eos="<end_of_utterance>", pad="<|endoftext|>", unk=None,
        extra_special_tokens={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                              "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>",
                              "video_token": "<video>"},
        added=SPECIALS, chat_template=CHAT_TEMPLATE,
    )
    scale = 2
    seq = (image_size // patch_size) ** 2 // scale ** 2
    image_processor = SmolVLMImageProcessorPil(size={"longest_edge": image_size}, do_image_splitting=False,
                                               max_image_size={"longest_edge": image_size})
    processor = SmolVLMImageOnlyProcessor(image_processor=image_processor, tokenizer=tok, image_seq_len=seq,
                                          chat_template=CHAT_TEMPLATE)
    ids = token_ids(tok)
    text = LlamaConfig(vocab_size=len(tok), **text_sizes(hidden, layers), **ids)
    vision = SmolVLMVisionConfig(**vision_sizes(hidden, image_size, patch_size))
    config = SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=scale,
                           image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False, **ids)
    return seeded_model(SmolVLMForConditionalGeneration, config, seed, ids), processor
