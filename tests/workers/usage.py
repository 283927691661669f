"""Worker: record COUNT usage events on one route and session, printing `ack <request_id> <created>`.

Usage: python -m tests.workers.usage ROUTE_ALIAS SESSION_ID COUNT TAG

Request ids are `TAG-<n>`: two workers given the same TAG report the same usage twice (a retry
race); the token counts are derived from the request id, so both send identical reports.
"""

from __future__ import annotations

import sys
import zlib

from tests.workers.setup import django_setup


def main(route_alias: str, session_id: str, count: int, tag: str) -> None:
    django_setup()
    from telemetry.services import usage_record
    from tests.owners import op_user

    for index in range(count):
        request_id = f"{tag}-{index}"
        seed = zlib.crc32(request_id.encode())
        input_tokens = 1_000 + seed % 50_000
        output_tokens = seed % 3_000
        result = usage_record(
            owner=op_user(),
            request_id=request_id,
            route_alias=route_alias,
            session_id=session_id,
            input_tokens=input_tokens,
            cached_input_tokens=seed % (input_tokens + 1),
            output_tokens=output_tokens,
            reasoning_tokens=seed % (output_tokens + 1),
            latency_ms=seed % 5_000,
        )
        # Printed only after the commit returned: an "ack" line is a durable write.
        print(f"ack {request_id} {result.created}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
