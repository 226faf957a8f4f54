"""`qwen2_5_vl`: Qwen2_5_VLForConditionalGeneration (Qwen2.5-VL ViT + Qwen2.5-7B LLM).

Default checkpoint Qwen/Qwen2.5-VL-7B-Instruct. The patch merger sits inside `model.visual`
but plays the projector's role, so `vision_tower` excludes it and `projector` is the merger.
There is no image newline (the `newline` role matches nothing). Roles: registry/families.yaml.
"""
from .tiny_parts import seeded_model, text_sizes, token_ids

# chat_template of Qwen/Qwen2.5-VL-7B-Instruct
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|image_pad|>", "<|video_pad|>"]


def tiny_tokenizer_and_image_processor(chat_template: str, image_size: int, patch_size: int, merge: int):
    """The Qwen-VL tiny models' byte tokenizer (Qwen's special tokens) and `Qwen2VLImageProcessorPil`
    (the PIL backend; the default torchvision one is not installed) with `min_pixels`/`max_pixels`
    pinned so an `image_size` px image stays that size. Qwen3-VL uses Qwen2-VL's image processor too."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from ..tiny import build_byte_tokenizer

    tok = build_byte_tokenizer(
        SPECIALS, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
        added=SPECIALS, chat_template=chat_template,
    )
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch_size, merge_size=merge, temporal_patch_size=2,
        min_pixels=image_size * image_size, max_pixels=4 * image_size * image_size)
    return tok, image_processor


def mrope_section(head_dim: int) -> list[int]:
    """Multimodal RoPE's (temporal, height, width) split of the rotary half-dimension."""
    return [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]


def build_tiny(seed: int = 0, image_size: int = 32, patch_size: int = 8, hidden: int = 64, layers: int = 2):
    """(model, processor): a randomly initialised Qwen2_5_VLForConditionalGeneration.

    Image processor: `Qwen2VLImageProcessorPil` (the PIL backend; the default torchvision one
    is not installed), with `min_pixels`/`max_pixels` pinned so a 32 px image stays 32 px."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from ..processors import Qwen2_5_VLImageOnlyProcessor

    merge = 2
    tok, image_processor = tiny_tokenizer_and_image_processor(CHAT_TEMPLATE, image_size, patch_size, merge)
    processor = Qwen2_5_VLImageOnlyProcessor(image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE)
    ids = token_ids(tok, bos=False)
    head_dim = hidden // 4
    text = dict(vocab_size=len(tok), **text_sizes(hidden, layers), **ids,
                rope_scaling={"rope_type": "default", "mrope_section": mrope_section(head_dim)})
    vision = dict(depth=2, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=4, out_hidden_size=hidden,
                  patch_size=patch_size, spatial_merge_size=merge, temporal_patch_size=2,
                  window_size=patch_size * merge * 2, fullatt_block_indexes=[1])
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"), tie_word_embeddings=False, **ids)
    return seeded_model(Qwen2_5_VLForConditionalGeneration, config, seed, ids), processor
