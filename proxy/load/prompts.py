"""What the load generator sends: prompts and how many tokens each request asks for."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Short general-knowledge / LLM questions: cheap prefill, so a sweep measures decode
# and scheduling rather than prompt length.
DEFAULT_MAX_TOKENS = 128

BUILTIN_QUESTIONS = (
    "What is the capital of Australia, and why was it chosen?",
    "Explain in two sentences what a large language model is.",
    "Why is the sky blue?",
    "What does the KV cache store during transformer inference?",
    "Name three differences between TCP and UDP.",
    "Who wrote 'Pride and Prejudice', and when was it published?",
    "What is continuous batching in LLM serving?",
    "How does photosynthesis turn light into chemical energy?",
    "What is the difference between latency and throughput?",
    "Why do GPUs speed up neural network training?",
    "What is time to first token, and what makes it grow under load?",
    "Summarise the plot of Homer's Odyssey in three sentences.",
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """Either plain text or a chat message list; each API gets the form it needs."""

    text: str | None = None
    messages: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.messages is None):
            raise ValueError("a prompt has exactly one of text or messages")

    def as_messages(self) -> list[dict[str, Any]]:
        if self.messages is not None:
            return [dict(message) for message in self.messages]
        return [{"role": "user", "content": self.text}]

    def as_text(self) -> str:
        if self.text is not None:
            return self.text
        # The completions API takes one string: join the turns' text parts.
        assert self.messages is not None
        return "\n".join(_content_text(m.get("content")) for m in self.messages)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def builtin_prompts() -> tuple[Prompt, ...]:
    return tuple(Prompt(text=question) for question in BUILTIN_QUESTIONS)


def load_jsonl(path: Path | str) -> tuple[Prompt, ...]:
    """One JSON object per line with a `prompt` (string) or `messages` (list) field.

    Blank lines are skipped; anything else that is not a usable prompt is an error
    naming its line, because a silently shorter prompt set skews the benchmark."""
    prompts: list[Prompt] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if isinstance(record, dict) and isinstance(record.get("prompt"), str):
            prompts.append(Prompt(text=record["prompt"]))
        elif (
            isinstance(record, dict)
            and isinstance(record.get("messages"), list)
            and record["messages"]
            and all(isinstance(m, dict) and "role" in m for m in record["messages"])
        ):
            prompts.append(Prompt(messages=tuple(record["messages"])))
        else:
            raise ValueError(f"{path}:{number}: needs a 'prompt' string or a 'messages' list")
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return tuple(prompts)


@dataclass(frozen=True, slots=True)
class OutputLength:
    """`max_tokens` per request: fixed, or a lognormal draw with the given mean.

    For the lognormal, `mean` is the mean output length in tokens and `sigma` the
    spread of the underlying normal, so mu = ln(mean) - sigma^2 / 2 keeps the mean
    where it was asked to be. Draws are clamped to [1, cap]."""

    mean: int
    sigma: float = 0.0
    cap: int = 4096

    def __post_init__(self) -> None:
        if self.mean < 1:
            raise ValueError("output length must be at least 1 token")
        if self.sigma < 0:
            raise ValueError("sigma must not be negative")
        if self.cap < self.mean:
            raise ValueError("cap must be at least the mean")

    @property
    def fixed(self) -> bool:
        return self.sigma == 0

    def draw(self, rng: random.Random) -> int:
        if self.fixed:
            return self.mean
        mu = math.log(self.mean) - self.sigma**2 / 2
        return max(1, min(self.cap, round(rng.lognormvariate(mu, self.sigma))))

    @classmethod
    def parse(cls, spec: str | None, max_tokens: int | None) -> OutputLength:
        """None -> fixed `max_tokens` (128 if unset); "lognormal:MEAN,SIGMA" -> a
        lognormal draw capped by `max_tokens` (8 x MEAN if unset)."""
        if spec is None:
            return cls(max_tokens or DEFAULT_MAX_TOKENS)
        kind, _, params = spec.partition(":")
        if kind.strip().lower() != "lognormal":
            raise ValueError(f"unknown output length {spec!r}; use lognormal:MEAN,SIGMA")
        try:
            mean_text, sigma_text = params.split(",")
            mean, sigma = round(float(mean_text)), float(sigma_text)
        except ValueError:
            raise ValueError(f"bad output length {spec!r}; use lognormal:MEAN,SIGMA") from None
        return cls(mean, sigma, cap=max_tokens or 8 * max(mean, 1))
