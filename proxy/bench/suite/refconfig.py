"""What the reference sections of the bench suite measure and how hard (issue 12's
table, paced streams; issue 10's slow clients and queued memory)."""

from __future__ import annotations

from dataclasses import dataclass

# `sweep` is the suite's original section (simulator sweeps, probes, micro-benchmarks); the
# others are the reference sections, which need nginx and wrk (except `paced`).
SECTIONS = ("sweep", "reference", "paced", "clients")
NEEDS_TOOLS = frozenset({"reference", "clients"})


@dataclass(frozen=True, slots=True)
class RefConfig:
    sections: tuple[str, ...] = SECTIONS
    rounds: int = 3  # interleaved, order alternating; medians over rounds
    seconds: int = 3  # per wrk run (whole seconds: wrk's -d takes no finer unit)
    levels: tuple[int, ...] = (1, 64)  # wrk connections
    sla_limit: int = 256  # --algorithm fixed --initial-limit: admission on, nothing shed
    paced_streams: int = 256
    paced_interval: float = 0.02  # seconds between two tokens of one stream (50 tokens/s)
    paced_tokens: int = 64  # per stream; each stream asks for the next when one ends
    paced_seconds: float = 5.0  # timed part of each run
    paced_warmup: float = 1.0  # connections and pools settle first
    slow_sockets: int = 5000  # idle or trickling client sockets
    trickle_share: float = 0.5  # of those, the share that trickles header bytes
    trickle_interval: float = 2.0  # seconds between two bytes of one trickling socket
    queued: int = 10000  # requests held in the queue for the memory reading
    queue_wait: float = 120.0  # longest wait for the queue to fill, seconds
    proxy_options: tuple[tuple[str, str], ...] = ()  # extra `serve` options, clients section

    def __post_init__(self) -> None:
        unknown = set(self.sections) - set(SECTIONS)
        if unknown or not self.sections:
            raise ValueError(f"sections must be among {', '.join(SECTIONS)}")
        if min(self.rounds, self.seconds, self.sla_limit, self.paced_streams) < 1:
            raise ValueError("rounds, seconds, sla limit and paced streams must be >= 1")
        if not self.levels or min(self.levels) < 1:
            raise ValueError("reference levels must be positive whole numbers")
        if min(self.paced_tokens, self.queued) < 1 or self.slow_sockets < 0:
            raise ValueError("paced tokens and queued must be >= 1, slow sockets >= 0")
        if not (self.paced_interval > 0 and self.paced_seconds > 0 and self.trickle_interval > 0):
            raise ValueError("paced interval, paced seconds and trickle interval must be > 0")
        if not 0 <= self.trickle_share <= 1 or self.paced_warmup < 0 or self.queue_wait <= 0:
            raise ValueError("trickle share in [0, 1], warm-up >= 0, queue wait > 0")

    def wants(self, section: str) -> bool:
        return section in self.sections

    @property
    def needs_tools(self) -> bool:
        return bool(NEEDS_TOOLS & set(self.sections))

    @property
    def any_reference(self) -> bool:
        return any(s in self.sections for s in ("reference", "paced", "clients"))


def option_pairs(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """`--proxy-option client-header-timeout=5` -> (("client-header-timeout", "5"),)."""
    pairs = []
    for value in values or []:
        name, sep, setting = value.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--proxy-option takes NAME=VALUE, got {value!r}")
        pairs.append((name.strip().removeprefix("--"), setting.strip()))
    return tuple(pairs)
