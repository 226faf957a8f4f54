"""`llava_onevision`: LlavaOnevisionForConditionalGeneration (SigLIP + Qwen2, anyres_max_9).

Default checkpoint llava-hf/llava-onevision-qwen2-7b-ov-hf. Prompts use the checkpoint's own
chat template (ChatML with the OV quirk: the assistant header of a rendered turn is
`<|im_start|>assistant ` + `\\n`, the generation prompt `<|im_start|>assistant\\n`). The tiny
model below carries that same template, so the collator is tested against the quirk.
"""
from .tiny_parts import grid_pinpoints, seeded_model, text_sizes, token_ids, vision_sizes

# chat_template of llava-hf/llava-onevision-qwen2-*-ov-hf
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]


def build_tiny(seed: int = 0, image_size: int = 32, patch_size: int = 8, hidden: int = 64, layers: int = 2):
    """(model, processor): a randomly initialised LlavaOnevisionForConditionalGeneration."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config, SiglipVisionConfig
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    from ..processors import LlavaOnevisionImageOnlyProcessor
    from ..tiny import build_byte_tokenizer

    tok = build_byte_tokenizer(
        SPECIALS, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None,
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        added=SPECIALS, chat_template=CHAT_TEMPLATE,
    )
    pins = grid_pinpoints(image_size)
    n_tokens = (image_size // patch_size) ** 2
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_grid_pinpoints=pins)
    processor = LlavaOnevisionImageOnlyProcessor(
        image_processor=image_processor, tokenizer=tok, num_image_tokens=n_tokens,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9", chat_template=CHAT_TEMPLATE)
    ids = token_ids(tok, bos=False)
    text = Qwen2Config(vocab_size=len(tok), **text_sizes(hidden, layers), **ids)
    vision = SiglipVisionConfig(**vision_sizes(hidden, image_size, patch_size), vision_use_head=False)
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"), vision_feature_select_strategy="full",
        vision_feature_layer=-1, vision_aspect_ratio="anyres_max_9", image_grid_pinpoints=pins,
        tie_word_embeddings=False)
    return seeded_model(LlavaOnevisionForConditionalGeneration, config, seed, ids), processor
