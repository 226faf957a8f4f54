"""`llava_next`: LlavaNextForConditionalGeneration (CLIP ViT-L/14@336 + Llama-3-8B).

Default checkpoint llava-hf/llama3-llava-next-8b-hf: 1024-d CLIP features (not SigLIP's 1152),
Llama-3 chat template, `<|eot_id|>` closes a turn. Note: HF's native LLaVA-NeXT has
no `anyres_max_9` downsampling, unlike the study's own LLaVA-NeXT code
(`llava/model/llava_arch.py` in jessemelpolio/LMM_CL, used with `--image_aspect_ratio anyres_max_9`).
"""
from .tiny_parts import grid_pinpoints, seeded_model, text_sizes, token_ids, vision_sizes

# chat_template of llava-hf/llama3-llava-next-8b-hf
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}"
    "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] | trim + '<|eot_id|>' }}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
            "<pad>", "<image>"]


def build_tiny(seed: int = 0, image_size: int = 32, patch_size: int = 8, hidden: int = 64, layers: int = 2):
    """(model, processor): a randomly initialised LlavaNextForConditionalGeneration."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    from ..tiny import build_byte_tokenizer

    tok = build_byte_tokenizer(
        SPECIALS, bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<pad>", unk=None,
        extra_special_tokens={"image_token": "<image>"}, added=SPECIALS, chat_template=CHAT_TEMPLATE,
    )
    pins = grid_pinpoints(image_size)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pins)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch_size,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=CHAT_TEMPLATE)
    ids = token_ids(tok)
    text = LlamaConfig(vocab_size=len(tok), **text_sizes(hidden, layers), **ids)
    vision = CLIPVisionConfig(**vision_sizes(hidden, image_size, patch_size), projection_dim=hidden)
    config = LlavaNextConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                             vision_feature_select_strategy="default", vision_feature_layer=-2,
                             image_grid_pinpoints=pins, tie_word_embeddings=False)
    return seeded_model(LlavaNextForConditionalGeneration, config, seed, ids), processor
