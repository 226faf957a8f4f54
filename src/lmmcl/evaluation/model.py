"""lmms-eval model wrapper `lmmcl`: lmms-eval's chat `LlavaHf` with CPU defaults and loud errors.

Registered through the `lmms_eval.models` entry point (`lmmcl.evaluation.manifest:MANIFEST`),
so `simple_evaluate(model="lmmcl", model_args="pretrained=<folder>")` and the CLI's
`--model lmmcl` both resolve here. Differences from `lmms_eval.models.chat.llava_hf.LlavaHf`:

- defaults `device="cpu"`, `device_map=<device>` (the parent's `device_map=""` is rejected by
  transformers 5), dtype float32 on CPU ("auto" elsewhere);
- `generate_until` does NOT swallow exceptions. The parent wraps `model.generate` in
  `try/except Exception` and scores an empty answer, so a broken model looks like accuracy 0.
  Here any error is re-raised as RuntimeError naming the task and doc id;
- requests are processed in their given order (batch size 1), the task's `until` stop strings
  are honoured (the parent ignores them), and generation seconds are recorded per task
  (`last_task_seconds()`).
"""
from __future__ import annotations

import time
from typing import List

import torch
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.models.chat.llava_hf import LlavaHf
from lmms_eval.protocol import ChatMessages
from tqdm import tqdm

_TASK_SECONDS: dict[str, float] = {}


def last_task_seconds() -> dict[str, float]:
    """Generation seconds per task of the most recent `generate_until` calls (this process)."""
    return dict(_TASK_SECONDS)


class LmmclLlava(LlavaHf):
    is_simple = False

    def __init__(self, pretrained: str, device: str = "cpu", device_map: str | None = None,
                 dtype: str | None = None, batch_size: int = 1, **kwargs) -> None:
        device = str(device or "cpu")
        if not device_map:
            device_map = device
        if dtype is None:
            dtype = "float32" if device.startswith("cpu") else "auto"
        if int(batch_size) != 1:
            raise ValueError(f"lmmcl model: only batch_size=1 is supported, got {batch_size}")
        super().__init__(pretrained=pretrained, device=device, device_map=device_map, dtype=dtype,
                         batch_size=1, **kwargs)
        _TASK_SECONDS.clear()

    def _generate_one(self, request: Instance) -> GenerationResult:
        _ctx, doc_to_messages, gen_kwargs, doc_id, task, split = request.args
        messages = ChatMessages(messages=doc_to_messages(self.task_dict[task][split][doc_id]))
        images, videos, _ = messages.extract_media()
        if videos:
            raise NotImplementedError(f"lmmcl model: video input is not supported ({task} doc {doc_id})")
        text = self._image_processor.apply_chat_template(
            messages.model_dump()["messages"], tokenize=False, add_generation_prompt=True
        )
        inputs = self._image_processor(images=images or None, text=text, return_tensors="pt")
        inputs = inputs.to(self._device, self.model.dtype)

        gen = dict(gen_kwargs or {})
        until = gen.pop("until", None) or []
        if isinstance(until, str):
            until = [until]
        temperature = float(gen.get("temperature", 0) or 0)
        do_sample = bool(gen.get("do_sample", False)) and temperature > 0
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                do_sample=do_sample,
                temperature=temperature if do_sample else None,
                top_p=gen.get("top_p") if do_sample else None,
                num_beams=int(gen.get("num_beams", 1) or 1),
                max_new_tokens=int(gen.get("max_new_tokens", 1024)),
                use_cache=self.use_cache,
                pad_token_id=self.eot_token_id,
                eos_token_id=self.eot_token_id,
            )
        new_ids = out[0, inputs["input_ids"].shape[-1]:]
        answer = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        for stop in until:
            if stop:
                answer = answer.split(stop)[0]
        self.cache_hook.add_partial("generate_until", (text, gen_kwargs), answer)
        return GenerationResult(text=answer, token_counts=TokenCounts(output_tokens=int(new_ids.numel())))

    def generate_until(self, requests: List[Instance]) -> List[GenerationResult]:
        results = []
        for request in tqdm(requests, disable=(self.rank != 0), desc="Model Responding"):
            _ctx, _msgs, _gen, doc_id, task, _split = request.args
            start = time.perf_counter()
            try:
                results.append(self._generate_one(request))
            except Exception as e:
                raise RuntimeError(
                    f"lmmcl model: generation failed for task {task!r} doc {doc_id} "
                    f"(checkpoint {self.pretrained}): {type(e).__name__}: {e}"
                ) from e
            _TASK_SECONDS[task] = _TASK_SECONDS.get(task, 0.0) + time.perf_counter() - start
        return results

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("lmmcl model: multi-round generation is not supported")
