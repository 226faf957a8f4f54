"""lmms-eval model wrapper `lmmcl`: one chat wrapper for every model family we train.

Registered through the `lmms_eval.models` entry point (`lmmcl.evaluation.manifest:MANIFEST`),
so `simple_evaluate(model="lmmcl", model_args="pretrained=<folder or hub id>")` and the CLI's
`--model lmmcl` both resolve here. It subclasses lmms-eval's chat `LlavaHf` (for its
properties and the `lmms` plumbing) but loads any image-text-to-text checkpoint through
transformers' auto classes, so the same wrapper serves `llava` (tiny), `llava_next`,
`llava_onevision` and `qwen2_5_vl` checkpoints: the processor's own chat template builds the
prompt from `[{type: image}, {type: text}]` messages. Differences from lmms-eval's wrappers:

- CPU defaults: `device="cpu"`, `device_map=<device>` (the parent's `device_map=""` is
  rejected by transformers 5), dtype float32 on CPU ("auto" elsewhere). Under
  `accelerate launch` with several processes each rank takes `cuda:<local rank>` (on a
  machine without GPUs: a gloo process group on CPU) and lmms-eval shards the documents
  (data parallel).
- Batched greedy generation (`batch_size=N`): prompts of one task with the same generation
  settings are left-padded together, with the attention mask from the processor, so batch N
  gives the answers of batch 1 (tests/test_evaluation.py checks it on the tiny model).
- `generate_until` does NOT swallow exceptions (lmms-eval scores a failed generation as an
  empty answer, so a broken model looks like accuracy 0): errors are re-raised as
  RuntimeError naming the task and doc ids.
- The task's `until` stop strings are honoured; generation seconds are recorded per task
  (`last_task_seconds()`).
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import List

import torch
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms
from lmms_eval.models.chat.llava_hf import LlavaHf
from lmms_eval.protocol import ChatMessages
from tqdm import tqdm

_TASK_SECONDS: dict[str, float] = {}


def last_task_seconds() -> dict[str, float]:
    """Generation seconds per task of the most recent `generate_until` calls (this process)."""
    return dict(_TASK_SECONDS)


def _generate_kwargs(gen_kwargs: dict | None) -> tuple[dict, list[str]]:
    """transformers `generate` arguments from a task's generation_kwargs, plus its stop strings."""
    gen = dict(gen_kwargs or {})
    until = gen.pop("until", None) or []
    if isinstance(until, str):
        until = [until]
    temperature = float(gen.get("temperature", 0) or 0)
    do_sample = bool(gen.get("do_sample", False)) and temperature > 0
    kwargs = dict(
        do_sample=do_sample,
        num_beams=int(gen.get("num_beams", 1) or 1),
        max_new_tokens=int(gen.get("max_new_tokens", 1024)),
    )
    if do_sample:
        kwargs.update(temperature=temperature, top_p=gen.get("top_p"))
    return kwargs, [s for s in until if s]


class LmmclModel(LlavaHf):
    """Chat wrapper for our checkpoints of every family (lmms-eval's LLaVA-HF chat model underneath)."""

    is_simple = False

    def __init__(self, pretrained: str, device: str = "cpu", device_map: str | None = None,
                 dtype: str | None = None, batch_size: int = 1, use_cache: bool = True,
                 attn_implementation: str | None = None, trust_remote_code: bool = False,
                 min_pixels: int | None = None, max_pixels: int | None = None) -> None:
        from accelerate import Accelerator

        import lmmcl.models.processors  # noqa: F401  (registers the image-only OV / Qwen processors)

        lmms.__init__(self)  # not LlavaHf.__init__: it only loads llava / llava_next / llava_onevision
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"lmmcl model: batch_size must be >= 1, got {batch_size}")
        device = str(device or "cpu")
        # cpu=True: several processes on a machine without GPUs (accelerate launch / torchrun)
        # form a gloo group; without it each would think it runs alone, evaluate every document
        # and write. Where GPUs exist, several processes take one GPU per rank (data parallel).
        on_cpu = device.startswith("cpu") and not torch.cuda.is_available()
        accelerator = Accelerator(cpu=on_cpu)
        if accelerator.num_processes > 1 and not on_cpu:
            device = f"cuda:{accelerator.local_process_index}"
            device_map = device
        device_map = device_map or device
        if dtype is None:
            dtype = "float32" if device.startswith("cpu") else "auto"
        torch_dtype = dtype if dtype == "auto" else getattr(torch, str(dtype))

        self.pretrained = pretrained
        self._device = torch.device(device)
        self.device_map = device_map
        from lmmcl.models.io import load_processor, load_weights  # composes delta checkpoints, MoE layers

        self._model = load_weights(
            pretrained, dtype=torch_dtype, device_map=device_map,
            attn_implementation=attn_implementation, trust_remote_code=trust_remote_code,
        ).eval()
        proc_kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
        self._image_processor = load_processor(
            pretrained, trust_remote_code=trust_remote_code, **{k: int(v) for k, v in proc_kwargs.items()})
        self._tokenizer = self._image_processor.tokenizer
        self._tokenizer.padding_side = "left"  # batched generation continues every row at the end
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._config = self._model.config
        self.batch_size_per_gpu = batch_size
        self.chat_template = None
        self.use_cache = bool(use_cache)
        self.max_frames_num = 0
        self.accelerator = accelerator
        self._rank = accelerator.process_index if accelerator.num_processes > 1 else 0
        self._world_size = accelerator.num_processes
        _TASK_SECONDS.clear()

    # ---- prompts ---------------------------------------------------------------------------
    def _prompt(self, request: Instance) -> tuple[str, list]:
        _ctx, doc_to_messages, _gen, doc_id, task, split = request.args
        messages = ChatMessages(messages=doc_to_messages(self.task_dict[task][split][doc_id]))
        images, videos, _ = messages.extract_media()
        if videos:
            raise NotImplementedError(f"lmmcl model: video input is not supported ({task} doc {doc_id})")
        text = self._image_processor.apply_chat_template(
            messages.model_dump()["messages"], tokenize=False, add_generation_prompt=True)
        return text, list(images or [])

    # ---- generation ------------------------------------------------------------------------
    def _generate_batch(self, task: str, texts: list[str], images: list, gen_kwargs: dict) -> list[tuple[str, int]]:
        """[(answer, generated tokens)] for one batch of prompts of `task` (left-padded)."""
        inputs = self._image_processor(images=images or None, text=texts, padding=True, return_tensors="pt")
        inputs = inputs.to(self._device, self.model.dtype)
        kwargs, until = _generate_kwargs(gen_kwargs)
        pad_id = self.tokenizer.pad_token_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs, use_cache=self.use_cache,
                                      pad_token_id=pad_id, eos_token_id=self.eot_token_id)
        new = out[:, inputs["input_ids"].shape[-1]:]
        answers = []
        for row in new:
            keep = row[(row != pad_id) & (row != self.eot_token_id)] if pad_id is not None else row
            text = self.tokenizer.decode(keep, skip_special_tokens=True)
            for stop in until:
                text = text.split(stop)[0]
            answers.append((text, int(keep.numel())))
        return answers

    def generate_until(self, requests: List[Instance]) -> List[GenerationResult]:
        """Answers in request order; batches hold requests of one task with equal settings."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[(r.args[4], json.dumps(r.args[2], sort_keys=True, default=str))].append(i)
        results: list[GenerationResult | None] = [None] * len(requests)
        bs = self.batch_size_per_gpu
        pbar = tqdm(total=len(requests), disable=(self.rank != 0), desc="Model Responding")
        for (task, _), idx in groups.items():
            prompts = {i: self._prompt(requests[i]) for i in idx}
            # longest prompts first: less padding per batch, and an OOM shows up at once
            order = sorted(idx, key=lambda i: -len(prompts[i][0]))
            for start in range(0, len(order), bs):
                chunk = order[start:start + bs]
                t0 = time.perf_counter()
                try:
                    answers = self._generate_batch(task, [prompts[i][0] for i in chunk],
                                                   [im for i in chunk for im in prompts[i][1]],
                                                   requests[chunk[0]].args[2])
                except Exception as e:
                    docs = [requests[i].args[3] for i in chunk]
                    raise RuntimeError(
                        f"lmmcl model: generation failed for task {task!r} doc(s) {docs} "
                        f"(checkpoint {self.pretrained}): {type(e).__name__}: {e}") from e
                _TASK_SECONDS[task] = _TASK_SECONDS.get(task, 0.0) + time.perf_counter() - t0
                for i, (text, n_tok) in zip(chunk, answers):
                    results[i] = GenerationResult(text=text, token_counts=TokenCounts(output_tokens=n_tok))
                    self.cache_hook.add_partial("generate_until", (prompts[i][0], requests[i].args[2]), text)
                pbar.update(len(chunk))
        pbar.close()
        return results

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("lmmcl model: multi-round generation is not supported")
