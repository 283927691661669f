"""Workload: building a long session's context once compaction has folded its history.

The context of a 100,000-message session with a `compaction` checkpoint 100 messages before its
leaf, against a 100-message session without one: the builder reads the checkpoint and the path
after it only, so the ratio should stay within 1.1x. Workload 15 of `bench.workloads.WORKLOADS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import fixtures
from bench.harness import Row, Target
from bench.workloads import Ctx, per_op_seconds

LARGE = 100_000
SMALL = 100
OPS = 40
BUDGET_TOKENS = 200_000


def context_after_compaction(ctx: Ctx, number: int, *, large: int = LARGE, ops: int = OPS) -> list[Row]:
    """Context build at `large` messages with a compaction checkpoint vs SMALL messages (target <= 1.1x)."""
    from core.conversation.services import checkpoint_create
    from core.models import CheckpointReason
    from memory.context import context_inputs

    title = f"context build: {large:,} msgs with a compaction checkpoint vs {SMALL} msgs"

    def build() -> dict[str, Any]:
        small = fixtures.session_with_messages(SMALL, "context small")
        big = fixtures.session_with_messages(large, "context large")
        checkpoint_create(
            session_id=big,
            through_seq=large - SMALL,
            reason=CheckpointReason.COMPACTION,
            summary="Summary of the conversation so far: " + "earlier turns folded. " * 50,
        )
        return {"small": small, "large": big}

    meta = ctx.dbs.fixture(f"context-compaction-{large}", build, shared=True)

    def builder(session_id: str) -> Callable[[], object]:
        def read() -> object:
            bundle = context_inputs(session_id=session_id, budget_tokens=BUDGET_TOKENS)
            if len(bundle.messages) != SMALL:
                raise RuntimeError(f"the context held {len(bundle.messages)} messages, expected {SMALL}")
            return bundle

        return read

    fns = {"small": builder(meta["small"]), "large": builder(meta["large"])}
    seconds = per_op_seconds(fns, ops, ctx.sizes.reps)
    return [
        ctx.ratio_row(number, f"{number}.ours", title, seconds, target=Target("<=", 1.1), profiled=(fns["large"], ops))
    ]
