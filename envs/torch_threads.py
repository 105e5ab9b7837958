"""The torch thread count of an env's own work, scoped to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then give the caller back its own count (None: leave
    it as it is). An env built or stepped in an agent's process (an evaluation or demonstration env) must not change
    the threads the agent's updates run on; setting the count costs microseconds against an env step's
    milliseconds."""
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
