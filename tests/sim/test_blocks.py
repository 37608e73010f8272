"""Paged KV block accounting."""

from dataclasses import dataclass

from proxy.sim.blocks import BlockManager


@dataclass
class Owner:
    num_blocks: int = 0


def test_grow_allocates_whole_blocks_on_demand() -> None:
    blocks, seq = BlockManager(10, 16), Owner()
    assert blocks.grow(seq, 17)
    assert (seq.num_blocks, blocks.used) == (2, 2)
    assert blocks.grow(seq, 32)  # still fits in two blocks
    assert blocks.used == 2


def test_grow_is_all_or_nothing() -> None:
    blocks, a, b = BlockManager(4, 16), Owner(), Owner()
    assert blocks.grow(a, 48)
    assert not blocks.grow(b, 32)
    assert (b.num_blocks, blocks.used) == (0, 3)


def test_release_returns_every_block() -> None:
    blocks, seq = BlockManager(4, 16), Owner()
    blocks.grow(seq, 64)
    blocks.release(seq)
    assert (seq.num_blocks, blocks.used, blocks.usage) == (0, 0, 0.0)
