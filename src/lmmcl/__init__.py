"""lmmcl: teach large multimodal models new skills in sequence; measure learning and forgetting."""
__version__ = "0.1.0"
