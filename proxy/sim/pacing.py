"""The mapping between simulated and wall-clock time at a speed factor (pure).

The engine runs on its own simulated clock; at speed X one simulated second takes
1/X wall seconds. Sleeping once per engine step would cost more than a sub-ms step
itself, so the runner asks `sleep_for` after every step and sleeps only when the
engine is at least `granularity` wall seconds ahead. Falling behind by more than
`max_lag` (the CPU cannot keep up) rebases the mapping instead of letting the engine
race to catch up, so a stall shows as a stall, not as a burst.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Pacer:
    speed: float
    granularity: float = 0.001  # wall seconds
    max_lag: float = 0.05  # wall seconds
    sim_origin: float = 0.0
    wall_origin: float = 0.0

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.granularity < 0 or self.max_lag <= 0:
            raise ValueError("granularity must be >= 0 and max_lag > 0")

    def rebase(self, sim_now: float, wall_now: float) -> None:
        self.sim_origin, self.wall_origin = sim_now, wall_now

    def to_sim(self, wall: float) -> float:
        return self.sim_origin + (wall - self.wall_origin) * self.speed

    def to_wall(self, sim: float) -> float:
        return self.wall_origin + (sim - self.sim_origin) / self.speed

    def sleep_for(self, sim_now: float, wall_now: float) -> float:
        """Wall seconds to sleep now so that `sim_now` is reached on time; 0 means
        carry on (the debt is below the granularity, or the engine is late)."""
        ahead = self.to_wall(sim_now) - wall_now
        if ahead < -self.max_lag:
            self.rebase(sim_now, wall_now)
            return 0.0
        return ahead if ahead >= self.granularity else 0.0
