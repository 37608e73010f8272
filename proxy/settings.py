"""Proxy settings: one validated, frozen object built from CLI, environment and `.env`.

Precedence (highest first): command-line options, `PROXY_*` environment variables,
a `.env` file in the working directory, the defaults below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    IPvAnyNetwork,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Port = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port (tests)
PositiveSeconds = Annotated[float, Field(gt=0)]


class Algorithm(StrEnum):
    AIMD = "aimd"
    FIXED = "fixed"


# The admission classes (proxy.limiter.Priority), as configuration spells them.
PriorityName = Literal["high", "normal", "low"]


DEFAULT_QUEUE_TIMEOUT = 30.0
_URL = TypeAdapter(AnyHttpUrl)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@\[\]-]*$")


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """One `--upstream` entry: a name (a metric label, /status) and the base URL."""

    name: str
    url: str  # no trailing slash: a path is appended

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


def parse_upstream(entry: str) -> UpstreamSpec:
    """`name=url` or a bare URL (named by its `host:port`); raises ValueError."""
    entry = entry.strip()
    name, sep, url = entry.partition("=")
    if not sep or "://" in name:
        name, url = "", entry
    try:
        base = str(_URL.validate_python(url.strip())).rstrip("/")
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"]) from None
    spec = UpstreamSpec(name.strip(), base)
    if not spec.name:
        host = f"[{spec.host}]" if ":" in spec.host else spec.host
        spec = UpstreamSpec(f"{host}:{spec.port}", base)
    if not _NAME.match(spec.name):
        raise ValueError(f"upstream name {spec.name!r}: letters, digits and ._:@- only")
    return spec


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PROXY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    # --- listening and upstream -------------------------------------------------
    upstream: str = Field(
        default="http://127.0.0.1:8000/",
        description="Base URL of the OpenAI-compatible server (vLLM); repeat the option (or "
        "separate with commas) for a pool, each entry `name=url` or a bare URL.",
    )
    host: str = Field(default="127.0.0.1", description="Address of the data and admin ports.")
    port: Port = Field(default=8080, description="Data port: everything is forwarded upstream.")
    admin_port: Port = Field(default=9464, description="Admin port: /metrics /status /healthz.")
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, gt=0, description="Largest request body accepted (413 above)."
    )
    connect_timeout: PositiveSeconds = Field(
        default=5.0, description="Seconds to open a connection to the upstream (then 502)."
    )
    first_byte_timeout: PositiveSeconds = Field(
        default=60.0,
        description="Seconds until the upstream's response headers arrive (then 504); a "
        "non-streamed answer's headers come with its last token.",
    )
    idle_read_timeout: PositiveSeconds = Field(
        default=60.0, description="Seconds of silence allowed between upstream chunks (then 504)."
    )
    upstream_down_after: int = Field(
        default=3, ge=1, description="Consecutive connect failures before answering 503."
    )
    upstream_probe_interval: PositiveSeconds = Field(
        default=1.0, description="Seconds between health probes while the upstream is down."
    )
    eject_after: int | None = Field(
        default=None,
        ge=1,
        description="Consecutive connect failures (or accept-then-close) that take a pool "
        "member out; default --upstream-down-after.",
    )
    eject_server_errors: int = Field(
        default=5,
        ge=0,
        description="Consecutive 5xx answers that take a member out while another serves "
        "(0: never).",
    )
    eject_seconds: PositiveSeconds = Field(
        default=5.0,
        description="A member's first time out (doubling per repeat); while no other member "
        "serves, the first good probe brings it back.",
    )
    resolve_interval: float = Field(
        default=0.0,
        ge=0,
        description="Seconds between DNS look-ups of hostname upstreams, each address a pool "
        "member (a headless Service); 0: off.",
    )

    # --- clients: slow or hostile connections, and what their headers may claim ----
    client_header_timeout: PositiveSeconds = Field(
        default=60.0,
        description="Seconds a client gets to send a request's line and headers (then 408).",
    )
    client_body_timeout: PositiveSeconds = Field(
        default=60.0, description="Seconds allowed between two reads of a request body (then 408)."
    )
    keepalive_timeout: PositiveSeconds = Field(
        default=75.0, description="Seconds an idle keep-alive client connection stays open."
    )
    max_connections: int = Field(
        default=8192,
        ge=1,
        description="Client connections open at once on the data port; beyond, a 503 and close.",
    )
    trust_priority_header: bool = Field(
        default=False,
        description="Take the priority header from requests without a mapped API key "
        "(else they are normal); a mapped key's class is always a ceiling.",
    )
    trusted_proxies: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated CIDRs whose Forwarded, X-Forwarded-* and X-Real-IP are "
        "kept and appended to; from any other peer they are replaced.",
    )

    # --- SLA --------------------------------------------------------------------
    sla_ttft: PositiveSeconds | None = Field(
        default=None, description="Target time to first token, seconds."
    )
    sla_tpot: PositiveSeconds | None = Field(
        default=None, description="Target time per output token, seconds."
    )
    sla_e2e: PositiveSeconds | None = Field(
        default=None, description="Target end-to-end latency, seconds."
    )
    sla_percentile: float = Field(
        default=0.9, gt=0, lt=1, description="Percentile the targets apply to."
    )
    # An upper bound of the evidence's age, not the rule: decisions come from the
    # requests admitted since the limit last moved, as soon as they are conclusive.
    # A minute holds the 30-odd requests a binomial decision needs at under one
    # request per second, and under a minute of stale samples at hundreds.
    window_seconds: PositiveSeconds = Field(
        default=60.0, description="Age after which a latency sample leaves the window."
    )
    # A one-sided 95% tolerance bound of the P90 from n samples is mean + k x sd of their
    # logs with k = 3.4 at n = 5, 7.7 at n = 3: below 5 the bound is too wide to help.
    window_min_samples: int = Field(
        default=5,
        ge=3,
        description="Fewest fresh values a decision far from the target rests on.",
    )
    window_max_samples: int = Field(
        default=4096, ge=16, description="Memory bound of each signal's window."
    )

    # --- controller -------------------------------------------------------------
    algorithm: Algorithm = Field(default=Algorithm.AIMD, description="aimd or fixed.")
    initial_limit: int = Field(default=8, ge=1, description="Concurrency limit at start.")
    min_limit: int = Field(default=1, ge=1, description="The limit never goes below this.")
    # Far above any engine's batch (vLLM's max_num_seqs is at most 1024): a bound on
    # the proxy's memory, never the reason an engine serves less than it could.
    max_limit: int = Field(default=4096, ge=1, description="The limit never goes above this.")
    increase_step: int = Field(default=1, ge=1, description="AIMD additive increase per step.")
    backoff: float = Field(
        default=0.9, ge=0.5, lt=1, description="AIMD multiplicative decrease factor."
    )
    # Decisions wait for conclusive evidence, not for the clock: a short interval only
    # lets a conclusive finding act sooner (each tick costs well under a millisecond).
    control_interval: PositiveSeconds = Field(
        default=0.25, description="Seconds between controller decisions."
    )
    decision_confidence: float = Field(
        default=0.95,
        ge=0.5,
        lt=1,
        description="Confidence of each decision's test on the miss fraction.",
    )
    overload_threshold: float = Field(
        default=0.05, gt=0, lt=1, description="Overload outcome rate that triggers a decrease."
    )
    utilization_threshold: float = Field(
        default=0.8, gt=0, le=1, description="Grow only while inflight >= this x limit."
    )

    # --- queue and shedding -----------------------------------------------------
    queue_size: int = Field(default=128, ge=0, description="Requests waiting for a permit.")
    queue_timeout: PositiveSeconds = Field(
        default=DEFAULT_QUEUE_TIMEOUT,
        description="Longest wait in the queue before 429; each request's own deadline "
        "is what its TTFT and E2E targets leave after the upstream's time, if shorter.",
    )
    max_queue_timeout: PositiveSeconds = Field(
        default=120.0, description="Cap on the per-request x-queue-timeout header."
    )
    priority_header: str = Field(default="x-priority", description="Header naming the class.")
    api_key_priorities: dict[str, PriorityName] = Field(
        default_factory=dict,
        description='API key to class, JSON: {"sk-batch": "low"}; the header may only lower it.',
    )

    # --- capacity alert ---------------------------------------------------------
    alertmanager_url: AnyHttpUrl | None = Field(
        default=None, description="Push the capacity alert to this Alertmanager."
    )
    alert_shed_ratio: float = Field(
        default=0.1, gt=0, le=1, description="Shed ratio above which demand exceeds capacity."
    )
    alert_for: PositiveSeconds = Field(
        default=60.0, description="Seconds the condition must hold before the alert fires."
    )
    alert_resolve_after: PositiveSeconds = Field(
        default=120.0, description="Healthy seconds before a firing alert resolves."
    )

    shutdown_timeout: PositiveSeconds = Field(
        default=25.0,
        description="On SIGTERM: one deadline for in-flight requests (readyz and new requests "
        "answer 503 meanwhile; streams still open at it end with an error event).",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error.")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return level

    @field_validator("upstream", mode="before")
    @classmethod
    def _upstream_list(cls, value: Any) -> Any:
        """One string, comma-separated entries, or a list (the repeated option)."""
        items = value if isinstance(value, list | tuple) else [value]
        entries = [part for item in items for part in str(item).split(",") if part.strip()]
        if not entries:
            raise ValueError("at least one upstream is needed")
        specs = []
        for entry in entries:
            try:
                specs.append(parse_upstream(entry))
            except ValueError as exc:
                if len(entries) == 1:
                    raise
                raise ValueError(f"{exc} (entry {entry.strip()!r})") from None
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"upstream names must differ: {', '.join(names)}")
        # The canonical form: each entry as given back by `upstreams`.
        return ",".join(
            _entry(spec) if _named(entry) else spec.url + "/"
            for spec, entry in zip(specs, entries, strict=True)
        )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _cidr_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("host")
    @classmethod
    def _nonempty_host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_limit > self.max_limit:
            raise ValueError(f"min_limit ({self.min_limit}) > max_limit ({self.max_limit})")
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            raise ValueError(
                f"initial_limit ({self.initial_limit}) outside "
                f"[min_limit, max_limit] = [{self.min_limit}, {self.max_limit}]"
            )
        if self.port == self.admin_port and self.port != 0:
            raise ValueError(f"port and admin_port are both {self.port}")
        if self.queue_timeout > self.max_queue_timeout:
            raise ValueError(
                f"queue_timeout ({self.queue_timeout}) > max_queue_timeout "
                f"({self.max_queue_timeout})"
            )
        return self

    @property
    def upstreams(self) -> tuple[UpstreamSpec, ...]:
        """The configured upstreams, in the order given."""
        return tuple(parse_upstream(entry) for entry in self.upstream.split(","))

    @property
    def upstream_base(self) -> str:
        """The first upstream's URL without a trailing slash, ready to have a path appended."""
        return self.upstreams[0].url

    @property
    def eject_threshold(self) -> int:
        return self.eject_after if self.eject_after is not None else self.upstream_down_after

    def warnings(self) -> list[str]:
        """Valid but probably unintended combinations, said once at start-up."""
        found = []
        if not self.sla_targets() and self.algorithm is Algorithm.AIMD:
            found.append(
                "no SLA target set (--sla-ttft, --sla-tpot, --sla-e2e): the limit reacts "
                "to upstream failures only"
            )
        return found

    def sla_targets(self) -> dict[str, float]:
        """Signal name to target seconds, only for the signals that have one."""
        targets = {"ttft": self.sla_ttft, "tpot": self.sla_tpot, "e2e": self.sla_e2e}
        return {name: value for name, value in targets.items() if value is not None}


def _named(entry: str) -> bool:
    name, sep, _ = entry.partition("=")
    return bool(sep) and "://" not in name


def _entry(spec: UpstreamSpec) -> str:
    return f"{spec.name}={spec.url}"
