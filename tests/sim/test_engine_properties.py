"""Engine invariants under any interleaving of arrivals, aborts and steps."""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sim.engine import Engine, SeqState, Sequence
from proxy.sim.profiles import PROFILES

PROFILE = replace(
    PROFILES["h100-llama3-8b"], max_model_len=256, max_num_seqs=6, max_num_batched_tokens=128
).with_blocks(24)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 200), st.integers(1, 50)),
        st.tuples(st.just("abort"), st.integers(0, 1000), st.just(0)),
        st.tuples(st.just("step"), st.just(0), st.just(0)),
    ),
    max_size=120,
)


def check(engine: Engine, seqs: list[Sequence]) -> None:
    held = sum(s.num_blocks for s in seqs)
    assert engine.blocks.used == held <= engine.blocks.num_blocks
    assert engine.num_running <= PROFILE.max_num_seqs
    assert all(s.state is SeqState.RUNNING for s in engine.running)
    assert all(s.state is SeqState.WAITING and s.num_blocks == 0 for s in engine.waiting)
    assert all(s.num_blocks == 0 for s in seqs if s.done)
    assert all(s.output_tokens <= s.target_tokens for s in seqs)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_blocks_are_conserved_and_limits_hold(operations: list[tuple[str, int, int]]) -> None:
    engine = Engine(PROFILE, seed=1)
    seqs: list[Sequence] = []
    for op, a, b in operations:
        if op == "add":
            seqs.append(engine.add(min(a, 200), b, ignore_eos=True))
        elif op == "abort" and seqs:
            engine.abort(seqs[a % len(seqs)])
        else:
            engine.step()
        check(engine, seqs)
    while engine.has_work:
        engine.step()
        check(engine, seqs)
    assert engine.blocks.used == 0
    assert all(s.done for s in seqs)
    assert all(s.output_tokens == s.target_tokens for s in seqs if s.state is SeqState.FINISHED)
