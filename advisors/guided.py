"""Grammar-guided diagnosis decoding for local causal LMs (SmolLM2, any ``hf:`` model).

Small local models rarely keep to a JSON format when generating freely (SmolLM2-135M loops on list items or
copies the example). So the local advisors do not let the model write the JSON: the decoder writes the
skeleton ``{"findings": [...], "move": {...}, "text": "..."}`` itself and lets the model decide only the
slots, greedily:

* the finding: the option (of the 8 :class:`~traingym.advisors.findings.Finding` values) with the highest
  *calibrated* log-probability as a continuation; ``confidence`` is its softmax probability among the options;
* each knob of the move: the option among ``-1`` / ``0`` / ``1`` with the highest calibrated log-probability;
* the text: greedy free generation until the closing quote (at most ``max_text_tokens``).

Calibration ("calibrate before use", Zhao et al. 2021): a tiny model prefers some options whatever the input,
so each option's log-probability is taken relative to its log-probability after a content-free report (the
rendering of an empty report: same layout, no numbers) along the same answer path. The content-free prompt is
prefilled once per advisor.

Every answer is in the vocabulary by construction, deterministic, and cheaper than free generation (one prompt
prefill plus a few short batched forwards reusing the KV cache). The resulting JSON still goes through
:func:`~traingym.advisors.llm_prompt.parse_diagnosis`, like any other answer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from traingym.advisors.completion import Completion
from traingym.advisors.diagnosis import Diagnosis
from traingym.advisors.findings import FINDINGS
from traingym.advisors.hf_backend import HFChatBackend, chat_prompt, load_causal_lm, torch_threads
from traingym.advisors.llm_prompt import SYSTEM_PROMPT, diagnosis_user_prompt, parse_diagnosis
from traingym.protocol.moves import KNOBS

MOVE_OPTIONS: tuple[str, ...] = (" -1", " 0", " 1")
ANSWER_START = '{"findings": ["'


class GuidedLLMAdvisor:
    """Diagnose with a local causal LM under a fixed JSON grammar (see the module docstring).

    Args:
        backend: the local model (its ``model`` / ``gguf_file`` / ``num_threads`` / ``name`` are used).
        max_text_tokens: bound on the generated explanation.
        calibrate: score options relative to a content-free report (recommended for small models).
        system_prompt: system message.
        max_report_chars: bound on the rendered report in the user message.
    """

    def __init__(self, backend: HFChatBackend, *, max_text_tokens: int = 24, calibrate: bool = True,
                 system_prompt: str = SYSTEM_PROMPT, max_report_chars: int = 1200) -> None:
        if max_text_tokens < 1:
            raise ValueError(f"max_text_tokens must be >= 1, got {max_text_tokens}")
        self.backend = backend
        self.name = backend.name
        self.max_text_tokens = int(max_text_tokens)
        self.calibrate = calibrate
        self.system_prompt = system_prompt
        self.max_report_chars = max_report_chars
        self.last_completion: Completion | None = None
        """The JSON answer and token usage of the latest call."""
        self._null_state: _DecodingState | None = None
        self._prefix_state: _DecodingState | None = None

    def diagnose(self, report: Mapping[str, Any]) -> Diagnosis:
        """Decode a diagnosis; the JSON it assembles is validated by ``parse_diagnosis``."""
        self.last_completion = None
        tokenizer, model = load_causal_lm(self.backend.model, self.backend.gguf_file, self.backend.device)
        user = diagnosis_user_prompt(report, self.max_report_chars)
        with torch_threads(self.backend.num_threads):
            state = self._prompt_state(tokenizer, model, user)
            prior = self._null_copy(tokenizer, model) if self.calibrate else None
            n_prompt = len(state.ids)
            index, probs = _choose(state, prior, [f'{f.value}"]' for f in FINDINGS], ', "move": {"lr":')
            move: dict[str, int] = {}
            for i, knob in enumerate(KNOBS):
                after = f', "{KNOBS[i + 1]}":' if i + 1 < len(KNOBS) else '}, "text": "'
                choice, _ = _choose(state, prior, MOVE_OPTIONS, after)
                move[knob] = int(MOVE_OPTIONS[choice])
            text = state.generate_until('"', self.max_text_tokens)
        answer = json.dumps({"findings": [FINDINGS[index].value], "confidence": round(probs[index], 4),
                             "move": move, "text": text})
        self.last_completion = Completion(answer, prompt_tokens=n_prompt,
                                          completion_tokens=len(state.ids) - n_prompt)
        return parse_diagnosis(answer)

    def load(self) -> None:
        """Load the model now."""
        self.backend.load()

    def _prompt_state(self, tokenizer: Any, model: Any, user: str) -> _DecodingState:
        """The decoding state after the prompt; the constant part before the user message is prefilled once."""
        full = chat_prompt(tokenizer, self.system_prompt, user) + ANSWER_START
        if self._prefix_state is None:
            marker = "\u241e"  # a character no report contains
            prefix = chat_prompt(tokenizer, self.system_prompt, marker).split(marker, 1)[0]
            self._prefix_state = _DecodingState(tokenizer, model, prefix)
        if not full.startswith(self._prefix_state.text):
            return _DecodingState(tokenizer, model, full)
        state = copy.deepcopy(self._prefix_state)
        state.append(full[len(state.text):])
        return state

    def _null_copy(self, tokenizer: Any, model: Any) -> _DecodingState:
        if self._null_state is None:
            null_user = diagnosis_user_prompt({}, self.max_report_chars)  # same layout, no numbers
            null_prompt = chat_prompt(tokenizer, self.system_prompt, null_user) + ANSWER_START
            self._null_state = _DecodingState(tokenizer, model, null_prompt)
        return copy.deepcopy(self._null_state)

    def __repr__(self) -> str:
        return f"GuidedLLMAdvisor({self.backend!r})"


def _choose(state: _DecodingState, prior: _DecodingState | None, options: Sequence[str],
            after: str) -> tuple[int, list[float]]:
    """Pick the option with the best (calibrated) score in ``state`` (and follow it in ``prior``)."""
    import torch

    scores = state.score(options, after)
    if prior is not None:
        scores = [s - p for s, p in zip(scores, prior.score(options, after))]
    best = max(range(len(options)), key=lambda i: (scores[i], -i))
    state.select(best)
    if prior is not None:
        prior.select(best)
    return best, torch.softmax(torch.tensor(scores, dtype=torch.float64), 0).tolist()


class _DecodingState:
    """Token ids of the text so far, the model's KV cache over them, and the logits after the last token."""

    def __init__(self, tokenizer: Any, model: Any, text: str) -> None:
        import torch
        from transformers import DynamicCache

        self.tokenizer, self.model = tokenizer, model
        self.text = text
        self.ids: list[int] = self._encode(text)
        # A cache without the model's config keeps every position in every layer: a sliding-window layer's cache
        # (Gemma 3: 512 tokens) drops old positions and then refuses the crops this decoder makes; the attention
        # masks still apply the window.
        cache = DynamicCache()
        with torch.inference_mode():
            # Only the last position's logits are used: skipping the others saves a (prompt x vocabulary) matmul
            # (Gemma's vocabulary has 262k entries).
            out = model(input_ids=torch.tensor([self.ids], device=model.device), past_key_values=cache,
                        use_cache=True, logits_to_keep=1)
        self.cache = out.past_key_values
        self.last_logits = out.logits[0, -1]
        self._pending: tuple[Any, ...] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> _DecodingState:
        clone = copy.copy(self)  # share tokenizer and model; copy the mutable decoding state
        clone.ids = list(self.ids)
        clone.cache = copy.deepcopy(self.cache, memo)
        clone._pending = None
        return clone

    def append(self, text: str) -> None:
        """Extend the text; the model reads it (nothing is chosen)."""
        import torch

        self.text += text
        new_ids = self._encode(self.text)
        keep = max(1, min(_common_prefix(self.ids, new_ids), len(new_ids)))
        _crop_to(self.cache, keep - 1)  # re-read the last shared token: its logits start the new part
        with torch.inference_mode():
            ids = torch.tensor([new_ids[keep - 1:]], device=self.model.device)
            out = self.model(input_ids=ids, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.ids = new_ids
        self.last_logits = out.logits[0, -1]

    def score(self, options: Sequence[str], after: str = "") -> list[float]:
        """Log-probability of each ``option + after`` as the continuation (one batched forward)."""
        import torch

        fulls = [self._encode(self.text + option + after) for option in options]
        keep = max(1, min(_common_prefix(self.ids, f) for f in fulls))
        suffixes = [f[keep - 1:] for f in fulls]  # start at the last shared token, to get its logits
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.eos_token_id or 0
        batch = torch.tensor([s + [pad] * (width - len(s)) for s in suffixes], device=self.model.device)
        _crop_to(self.cache, keep - 1)
        self.cache.batch_repeat_interleave(len(options))
        with torch.inference_mode():
            logits = self.model(input_ids=batch, past_key_values=self.cache, use_cache=True).logits
        logprobs = torch.log_softmax(logits.float(), -1)
        scores = [float(sum(logprobs[i, j - 1, s[j]] for j in range(1, len(s)))) for i, s in enumerate(suffixes)]
        self._pending = (options, after, fulls, suffixes, keep, logits)
        return scores

    def select(self, index: int) -> None:
        """Commit option ``index`` of the last :meth:`score` (reusing its batched forward)."""
        import torch

        assert self._pending is not None, "select() needs a score() first"
        options, after, fulls, suffixes, keep, logits = self._pending
        self._pending = None
        self.cache.batch_select_indices(torch.tensor([index], device=self.model.device))
        _crop_to(self.cache, keep - 1 + len(suffixes[index]))  # drop this row's right padding
        self.text += options[index] + after
        self.ids = list(fulls[index])
        self.last_logits = logits[index, len(suffixes[index]) - 1]

    def generate_until(self, stop: str, max_tokens: int) -> str:
        """Greedily generate up to ``max_tokens`` tokens or until ``stop`` / a newline / EOS; return the text."""
        import torch

        generated: list[int] = []
        text = ""
        for _ in range(max_tokens):
            token = int(torch.argmax(self.last_logits))
            if token == self.tokenizer.eos_token_id:
                break
            generated.append(token)
            self.ids.append(token)
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            if stop in text or "\n" in text:
                break
            with torch.inference_mode():
                ids = torch.tensor([[token]], device=self.model.device)
                out = self.model(input_ids=ids, past_key_values=self.cache, use_cache=True)
            self.last_logits = out.logits[0, -1]
        text = text.split(stop, 1)[0].split("\n", 1)[0]
        self.text += text
        return text

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def _crop_to(cache: Any, length: int) -> None:
    """Keep the first ``length`` positions of a KV cache (negative ``crop`` = tokens to remove, in 4.x and 5.x)."""
    excess = cache.get_seq_length() - length
    if excess > 0:
        cache.crop(-excess)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
