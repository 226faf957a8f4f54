"""What every family's tiny builder shares: the sizes of a tiny LLM and vision tower, the image
grid of the any-resolution processors, and the seeded instantiation."""
from __future__ import annotations


def grid_pinpoints(image_size: int) -> list[list[int]]:
    """Any-resolution grid: 1x1 to 2x2 tiles of the image size."""
    return [[image_size * i, image_size * j] for i in (1, 2) for j in (1, 2)]


def token_ids(tok, bos: bool = True) -> dict:
    """The special token ids the config and the generation config carry."""
    return dict(bos_token_id=tok.bos_token_id if bos else None, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id)


def text_sizes(hidden: int, layers: int) -> dict:
    """A tiny decoder: 4 heads (2 KV heads), MLP 4x wide, untied embeddings."""
    return dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=False)


def vision_sizes(hidden: int, image_size: int, patch_size: int) -> dict:
    """A tiny ViT: 2 layers, 4 heads, MLP 2x wide."""
    return dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
                image_size=image_size, patch_size=patch_size)


def seeded_model(model_class, config, seed: int, ids: dict):
    """`model_class(config)` initialised under `seed`, its generation config given the token ids."""
    import torch

    torch.manual_seed(seed)
    model = model_class(config)
    for k, v in ids.items():
        setattr(model.generation_config, k, v)
    return model
