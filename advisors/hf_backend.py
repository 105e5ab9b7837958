"""Chat completions from a local transformers causal LM (offline: ``local_files_only=True``).

Models are loaded once per process and shared (:func:`load_causal_lm`), since each env process builds its own
advisor. Decoding is greedy (deterministic) with a bounded ``max_new_tokens``; in ``json_mode`` generation stops
as soon as the first JSON object is complete.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from traingym.advisors.completion import Completion
from traingym.advisors.errors import AdvisorUnavailableError

logger = logging.getLogger(__name__)

_MODELS: dict[tuple[str, str | None], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()


def load_causal_lm(model: str | Path, gguf_file: str | None = None, device: str = "cpu") -> tuple[Any, Any]:
    """Return ``(tokenizer, model)`` for a local directory or an already-cached model id, loading it once per
    device.

    Raises:
        AdvisorUnavailableError: the files are not available locally (no hub downloads are attempted).
    """
    key = (str(model), gguf_file, device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            extra = {"gguf_file": gguf_file} if gguf_file else {}
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(model), local_files_only=True, **extra)
                lm = AutoModelForCausalLM.from_pretrained(str(model), local_files_only=True, **extra)
            except (OSError, ValueError) as error:
                raise AdvisorUnavailableError(
                    f"cannot load causal LM {str(model)!r} offline ({type(error).__name__}: {str(error)[:200]}). "
                    "Pass a local model directory (config.json + weights + tokenizer) or a model id that is "
                    "already in the Hugging Face cache; TrainGym never downloads models at run time."
                ) from error
            lm.to(device).eval()
            _MODELS[key] = (tokenizer, lm)
        return _MODELS[key]


class HFChatBackend:
    """Greedy chat completions from a local causal LM.

    Args:
        model: local model directory or cached model id.
        gguf_file: GGUF file name inside ``model`` (dequantised on load; slow, prefer a converted copy).
        max_new_tokens: generation budget per call.
        num_threads: torch intra-op threads used while generating (restored afterwards); None leaves the
            process setting alone.
        answer_prefix: text forced at the start of the assistant's answer (kept in ``Completion.text``).
        json_mode: stop generating once the first JSON object in the answer is complete.
        name: name reported in ``info["used"]`` (default ``hf:<model>``).
        device: torch device the model runs on (``cpu``, ``cuda``, ``cuda:N``).
    """

    def __init__(self, model: str | Path, *, gguf_file: str | None = None, max_new_tokens: int = 128,
                 num_threads: int | None = 1, answer_prefix: str = "", json_mode: bool = True,
                 name: str | None = None, device: str = "cpu") -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.model = str(model)
        self.gguf_file = gguf_file
        self.max_new_tokens = int(max_new_tokens)
        self.num_threads = num_threads
        self.answer_prefix = answer_prefix
        self.json_mode = json_mode
        self.name = name or f"hf:{self.model}"
        self.device = device

    def load(self) -> None:
        """Load the model now (otherwise it loads on the first call)."""
        load_causal_lm(self.model, self.gguf_file, self.device)

    def complete(self, system: str, user: str) -> Completion:
        """Generate the answer to one system + user exchange (greedy)."""
        import torch

        tokenizer, lm = load_causal_lm(self.model, self.gguf_file, self.device)
        prompt = chat_prompt(tokenizer, system, user) + self.answer_prefix
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(lm.device)
        n_prompt = int(inputs["input_ids"].shape[1])
        stopping = [_json_stop(tokenizer, n_prompt, self.answer_prefix)] if self.json_mode else []
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with torch_threads(self.num_threads), torch.inference_mode():
            output = lm.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, temperature=None, top_p=None,
                top_k=None, pad_token_id=pad, stopping_criteria=_criteria_list(stopping),
            )
        new_tokens = output[0, n_prompt:]
        text = self.answer_prefix + tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Completion(text=text, prompt_tokens=n_prompt, completion_tokens=int(new_tokens.shape[0]))

    def __repr__(self) -> str:
        return f"HFChatBackend(model={self.model!r}, max_new_tokens={self.max_new_tokens})"


def chat_prompt(tokenizer: Any, system: str, user: str) -> str:
    """The model's chat template applied to a system + user exchange, ready for the assistant's answer; without a
    template (base models), a plain layout after the BOS token the tokenizer would add."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return f"{_default_bos(tokenizer)}System: {system}\n\nUser: {user}\n\nAssistant: "


def _default_bos(tokenizer: Any) -> str:
    """The BOS token's text if the tokenizer adds it by default, else "". Prompts are encoded without special
    tokens (a chat template writes its own), and some base models (Gemma) degrade badly without their BOS."""
    bos_id = tokenizer.bos_token_id
    if bos_id is None or tokenizer("a")["input_ids"][:1] != [bos_id]:
        return ""
    return str(tokenizer.bos_token)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch intra-op threads inside the block (None: leave the setting alone)."""
    import torch

    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _criteria_list(criteria: list[Any]) -> Any:
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList(criteria)


def _json_stop(tokenizer: Any, n_prompt: int, prefix: str) -> Any:
    """Stopping criterion: the answer so far (prefix + new tokens) contains a complete top-level JSON object."""
    import torch
    from transformers import StoppingCriteria

    class JsonObjectComplete(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            text = prefix + tokenizer.decode(input_ids[0, n_prompt:], skip_special_tokens=True)
            return torch.full((input_ids.shape[0],), _json_object_closed(text), dtype=torch.bool,
                              device=input_ids.device)

    return JsonObjectComplete()


def _json_object_closed(text: str) -> bool:
    """True once the first ``{`` has its matching ``}`` (braces inside strings ignored)."""
    depth, in_string, escaped, started = 0, False, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
            started = True
        elif ch == "}" and started:
            depth -= 1
            if depth == 0:
                return True
    return False
