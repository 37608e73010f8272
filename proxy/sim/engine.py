"""The simulated engine: vLLM V1's scheduler over a paged KV cache, timed by a roofline.

Pure and synchronous: `step()` schedules one batch, advances the engine's own clock
(`now`, simulated seconds) by the roofline's step time and applies the results. The
asyncio side (`proxy.sim.runner`) decides when wall-clock time has caught up.

Scheduling follows vLLM V1: running sequences first, in arrival order, each taking
what it still needs (one token when decoding, a chunk of its prompt when
prefilling) from a per-step token budget; when the KV cache cannot hold a running
sequence's next tokens, the newest running sequence is preempted (its blocks freed,
to be recomputed later) and put back at the head of the waiting queue; waiting
sequences are admitted in FIFO order while the budget, `max_num_seqs` and free
blocks allow, and not in a step that preempted. With `StaticBatching`
(`proxy.sim.batching`) an idle engine instead starts a whole batch at once, when it
is full or its timeout expired, and admits nothing until that batch has finished;
until then `step()` does nothing and `launch_at` says when it will.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from enum import Enum

from proxy.sim.batching import CONTINUOUS, Batching, StaticBatching
from proxy.sim.blocks import BlockManager
from proxy.sim.histogram import EngineStats
from proxy.sim.profiles import Profile


class SeqState(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(eq=False, slots=True)
class Sequence:
    id: int
    prompt_tokens: int
    target_tokens: int  # output length this request will reach
    finish_reason: str  # "length" (max_tokens) or "stop" (an EOS draw)
    arrival: float
    output_tokens: int = 0
    computed: int = 0  # tokens whose KV is in the cache
    num_blocks: int = 0
    state: SeqState = SeqState.WAITING
    first_token_at: float | None = None
    last_token_at: float = 0.0
    finished_at: float | None = None
    preemptions: int = 0
    scheduled: int = 0  # tokens computed for it in the current step

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def done(self) -> bool:
        return self.state in (SeqState.FINISHED, SeqState.ABORTED)


@dataclass(frozen=True, slots=True)
class StepResult:
    duration: float  # simulated seconds
    scheduled: int  # sequences in the batch
    emitted: list[Sequence]  # got a token this step (finished ones included)


class Engine:
    def __init__(
        self,
        profile: Profile,
        *,
        seed: int = 0,
        start: float = 0.0,
        batching: Batching = CONTINUOUS,
    ) -> None:
        if isinstance(batching, StaticBatching) and batching.batch_size > profile.max_num_seqs:
            raise ValueError(
                f"batch_size {batching.batch_size} exceeds max_num_seqs {profile.max_num_seqs}"
            )
        self.profile = profile
        self.batching = batching
        self._static = batching if isinstance(batching, StaticBatching) else None
        self.roofline = profile.roofline
        self.blocks = BlockManager(profile.num_gpu_blocks, profile.block_size)
        self.running: list[Sequence] = []
        self.waiting: deque[Sequence] = deque()
        self.now = start
        self.slowdown = 1.0  # fault injection: multiplies every step's time
        self.stats = EngineStats()
        self._rng = random.Random(seed)
        self._next_id = 0

    # --- requests -------------------------------------------------------------
    def output_length(self, prompt_tokens: int, max_tokens: int | None, ignore_eos: bool) -> int:
        """Tokens this request will produce: exactly the cap with ignore_eos, otherwise a
        seeded lognormal draw (the model stopping by itself) limited by the cap."""
        room = self.profile.max_model_len - prompt_tokens
        cap = room if max_tokens is None else min(max_tokens, room)
        if ignore_eos:
            return cap
        p = self.profile
        draw = self._rng.lognormvariate(math.log(p.output_len_median), p.output_len_sigma)
        return max(1, min(cap, round(draw)))

    def add(
        self,
        prompt_tokens: int,
        max_tokens: int | None = None,
        *,
        ignore_eos: bool = False,
        arrival: float | None = None,
    ) -> Sequence:
        """Queue a request; it joins the batch at the next step."""
        if prompt_tokens < 1 or prompt_tokens >= self.profile.max_model_len:
            raise ValueError(f"prompt_tokens must be in [1, {self.profile.max_model_len})")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        target = self.output_length(prompt_tokens, max_tokens, ignore_eos)
        cap = self.profile.max_model_len - prompt_tokens
        hit_cap = target == (cap if max_tokens is None else min(max_tokens, cap))
        seq = Sequence(
            id=self._next_id,
            prompt_tokens=prompt_tokens,
            target_tokens=target,
            finish_reason="length" if hit_cap else "stop",
            arrival=self.now if arrival is None else arrival,
        )
        self._next_id += 1
        self.waiting.append(seq)
        return seq

    def abort(self, seq: Sequence) -> None:
        """The client went away: drop the sequence wherever it is and free its blocks."""
        if seq.done:
            return
        if seq.state is SeqState.RUNNING:
            self.running.remove(seq)
        else:
            self.waiting.remove(seq)
        self.blocks.release(seq)
        seq.state = SeqState.ABORTED
        seq.finished_at = self.now
        self.stats.aborted += 1

    # --- state ----------------------------------------------------------------
    @property
    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def kv_usage(self) -> float:
        return self.blocks.usage

    @property
    def launch_at(self) -> float | None:
        """Static batching, between batches: the simulated time at which the next batch
        starts if nothing else arrives (None: continuous, or a batch is running)."""
        if self._static is None or self.running:
            return None
        launch = self._static.launch_at(self.waiting)
        return None if launch is None else max(self.now, launch)

    # --- one step -------------------------------------------------------------
    def _preempt_newest(self) -> Sequence:
        victim = self.running.pop()
        self.blocks.release(victim)
        victim.computed = 0  # recompute: prompt and output so far are prefilled again
        victim.state = SeqState.WAITING
        victim.preemptions += 1
        self.waiting.appendleft(victim)
        self.stats.preemptions += 1
        return victim

    def _make_room(self, seq: Sequence, tokens: int) -> bool:
        """Grow `seq` to `tokens`, preempting the newest running sequences as needed;
        False when `seq` itself had to go."""
        while not self.blocks.grow(seq, tokens):
            if self._preempt_newest() is seq:
                return False
        return True

    def _start_batch(self, static: StaticBatching) -> bool:
        """Between static batches: move the next batch into `running` when it is due."""
        launch = static.launch_at(self.waiting)
        if launch is None or launch > self.now:
            return False
        for _ in range(min(static.batch_size, len(self.waiting))):
            seq = self.waiting.popleft()
            seq.state = SeqState.RUNNING  # its blocks are taken by the loop below
            self.running.append(seq)
        self.stats.batches += 1
        return True

    def _schedule(self) -> list[Sequence]:
        static = self._static
        if static is not None and not self.running and not self._start_batch(static):
            return []
        budget = self.profile.max_num_batched_tokens
        capacity = self.blocks.block_size
        batch: list[Sequence] = []
        running = self.running
        preemptions_before = self.stats.preemptions
        i = 0
        # Hot loop at hundreds of sequences per step: a decoding sequence needs a new
        # block only every block_size tokens, so the block manager is called rarely.
        while i < len(running) and budget > 0:
            seq = running[i]
            n = seq.prompt_tokens + seq.output_tokens - seq.computed
            if n > budget:
                n = budget
            target = seq.computed + n
            if target > seq.num_blocks * capacity and not self._make_room(seq, target):
                break  # seq was the newest and got preempted: nothing after it remains
            seq.scheduled = n
            batch.append(seq)
            budget -= n
            i += 1
        if self.stats.preemptions != preemptions_before or static is not None:
            return batch  # static batching admits nothing while a batch runs
        waiting = self.waiting
        while waiting and budget > 0 and len(running) < self.profile.max_num_seqs:
            seq = waiting[0]
            n = min(seq.total_tokens - seq.computed, budget)
            if not self.blocks.grow(seq, seq.computed + n):
                break
            waiting.popleft()
            seq.state = SeqState.RUNNING
            seq.scheduled = n
            running.append(seq)
            batch.append(seq)
            budget -= n
        return batch

    def step(self) -> StepResult:
        """Run one engine step; an idle engine returns a zero-length step."""
        batch = self._schedule()
        if not batch:
            return StepResult(0.0, 0, [])
        decode_seqs = decode_context = 0
        prefill_tokens = prefill_seqs = prior = pairs = 0
        for seq in batch:
            n, done = seq.scheduled, seq.computed
            if n == 1 and done >= seq.prompt_tokens:
                decode_seqs += 1
                decode_context += done + 1
            else:
                prefill_tokens += n
                prior += done
                pairs += n * done + n * (n + 1) // 2
                if done + n == seq.prompt_tokens + seq.output_tokens:
                    prefill_seqs += 1
        cost = self.roofline.step_cost(
            decode_seqs=decode_seqs,
            decode_context=decode_context,
            prefill_tokens=prefill_tokens,
            prefill_seqs=prefill_seqs,
            prefill_prior_context=prior,
            prefill_attention_pairs=pairs,
        )
        duration = cost.total * self.slowdown
        previous_end = self.now
        self.now += duration
        return StepResult(duration, len(batch), self._apply(batch, previous_end))

    def _apply(self, batch: list[Sequence], previous_end: float) -> list[Sequence]:
        now, stats = self.now, self.stats
        emitted: list[Sequence] = []
        finished = False
        back_to_back = 0  # sequences whose previous token came from the previous step
        for seq in batch:
            seq.computed += seq.scheduled
            if seq.computed < seq.prompt_tokens + seq.output_tokens:
                continue  # mid-prefill: no token yet
            seq.output_tokens += 1
            emitted.append(seq)
            if seq.first_token_at is None:
                seq.first_token_at = now
                stats.ttft.observe(now - seq.arrival)
                stats.prompt_tokens += seq.prompt_tokens
            elif seq.last_token_at == previous_end:
                back_to_back += 1
            else:
                stats.itl.observe(now - seq.last_token_at)
            seq.last_token_at = now
            if seq.output_tokens >= seq.target_tokens:
                seq.state = SeqState.FINISHED
                seq.finished_at = now
                self.blocks.release(seq)
                stats.finished[seq.finish_reason] += 1
                stats.e2e.observe(now - seq.arrival)
                finished = True
        if back_to_back:
            # One observation per token, as vLLM's, grouped because they are equal.
            stats.itl.observe(now - previous_end, back_to_back)
        stats.generation_tokens += len(emitted)
        if finished:
            self.running = [s for s in self.running if s.state is SeqState.RUNNING]
        return emitted
