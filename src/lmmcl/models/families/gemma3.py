"""`gemma3`: Gemma3ForConditionalGeneration (SigLIP + Gemma 3 LLM).

Default checkpoint google/gemma-3-4b-it. Layout (transformers `models/gemma3/modeling_gemma3.py`):
`model.vision_tower` is a SigLIP vision model whose layers have their own `self_attn.q_proj/
k_proj/v_proj/out_proj` and `mlp.fc1/fc2` — the original study's substring `self_attn.q_proj`
would train them too, hence the anchored roles; `model.multi_modal_projector` is
`Gemma3MultiModalProjector`: a bare parameter `mm_input_projection_weight` plus the RMS norm
`mm_soft_emb_norm`; `model.language_model` is Gemma 3 (q/k norms, pre/post feed-forward norms).
The embeddings are tied to the lm_head, so `lm_head` matches no parameter. No image newline.
The assistant role is rendered `model`; `<end_of_turn>` closes a turn. Roles: registry/families.yaml.
"""
from .tiny_parts import seeded_model, text_sizes, token_ids

# chat_template of google/gemma-3-4b-it
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = \"\" -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}"
    "{%- else -%}{{ raise_exception(\"Invalid content type\") }}{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}"
)
SPECIALS = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
            "<image_soft_token>"]


def build_tiny(seed: int = 0, image_size: int = 32, patch_size: int = 8, hidden: int = 64, layers: int = 2):
    """(model, processor): a randomly initialised Gemma3ForConditionalGeneration; the projector
    pools the (32/8)^2 = 16 patches to 4 soft tokens per image (`mm_tokens_per_image`)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    from ..processors import Gemma3FlatImagesProcessor
    from ..tiny import build_byte_tokenizer
    from .tiny_parts import vision_sizes

    tok = build_byte_tokenizer(
        SPECIALS, bos="<bos>", eos="<end_of_turn>", pad="<pad>", unk=None,
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
        added=SPECIALS, chat_template=CHAT_TEMPLATE,
    )
    soft_tokens = 4
    image_processor = Gemma3ImageProcessorPil(size={"height": image_size, "width": image_size})
    processor = Gemma3FlatImagesProcessor(image_processor=image_processor, tokenizer=tok, image_seq_length=soft_tokens,
                                chat_template=CHAT_TEMPLATE)
    ids = token_ids(tok)
    sizes = text_sizes(hidden, layers)
    text = Gemma3TextConfig(vocab_size=len(tok), **sizes, head_dim=hidden // 4, query_pre_attn_scalar=hidden // 4,
                            sliding_window=64, **ids)
    vision = SiglipVisionConfig(**vision_sizes(hidden, image_size, patch_size), vision_use_head=False)
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=soft_tokens,
        boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"), tie_word_embeddings=True, **ids)
    return seeded_model(Gemma3ForConditionalGeneration, config, seed, ids), processor
