"""Paged KV cache accounting: fixed-size blocks handed out on demand, as vLLM's.

Only counts matter to the simulation (which physical block holds which tokens does
not change timing), so a sequence's allocation is one integer kept on the sequence
and the manager keeps the free count. Allocation is all-or-nothing per request.
"""

from __future__ import annotations

from typing import Protocol


class HoldsBlocks(Protocol):
    num_blocks: int


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks <= 0 or block_size <= 0:
            raise ValueError("num_blocks and block_size must be positive")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.used = 0

    @property
    def free(self) -> int:
        return self.num_blocks - self.used

    @property
    def usage(self) -> float:
        """Fraction of blocks in use, 0..1 (vLLM's kv_cache_usage_perc is a fraction too)."""
        return self.used / self.num_blocks

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def grow(self, owner: HoldsBlocks, tokens: int) -> bool:
        """Make `owner` hold enough blocks for `tokens`; False (and no change) if the
        free blocks do not suffice."""
        extra = self.blocks_for(tokens) - owner.num_blocks
        if extra <= 0:
            return True
        if extra > self.num_blocks - self.used:
            return False
        self.used += extra
        owner.num_blocks += extra
        return True

    def release(self, owner: HoldsBlocks) -> None:
        self.used -= owner.num_blocks
        owner.num_blocks = 0
