"""Faults injected at run time through `/sim/faults` (validated, immutable values).

- error_rate + error_status: that fraction of new generation requests is answered with
  that status and an OpenAI-shaped error body;
- slowdown: multiplies every engine step's time (a throttled or shared GPU);
- hang: requests are accepted and never answered (until the client gives up);
- cut_after_chunks: streamed responses are cut after that many chunks, without
  [DONE] and without the chunked-encoding terminator;
- refuse: connections are closed without an answer.

hang and refuse apply to every route except /metrics and /sim/*, so a health probe
sees them too; error_rate and cut_after_chunks apply to generation requests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: int = Field(default=500, ge=400, le=599)
    slowdown: float = Field(default=1.0, gt=0.0, le=1000.0)
    hang: bool = False
    cut_after_chunks: int | None = Field(default=None, ge=0)
    refuse: bool = False

    def merged(self, update: dict[str, object]) -> Faults:
        """A POST sets the fields it names and keeps the others (validated as a whole)."""
        return Faults.model_validate({**self.model_dump(), **update})


ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "BadRequestError" if status < 500 else "InternalServerError")
