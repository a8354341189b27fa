"""The floor: the least a buffering gateway could do per write, to compare the real one with.

A bare FastAPI app (a uvicorn factory, like the gateway's) with one endpoint at the gateway's
path, ``POST /executed_obs_units/start``: it reads the request body, appends it to a Redis
stream with one ``XADD`` (the same Redis, so the same AOF with ``appendfsync always``) and
answers 201 with a small JSON. No authentication, validation, envelope or Lua. Served by
``python -m bench.bare_app`` with the options ``ccat-api serve`` uses (one worker, log level
warning, no access log).

Environment: ``BENCH_REDIS_URL`` (required), ``BENCH_STREAM`` (default ``bench:bare:stream``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ccat_api.runtime import make_redis

DEFAULT_STREAM = "bench:bare:stream"


def create_app() -> FastAPI:
    redis_url = os.environ["BENCH_REDIS_URL"]
    stream = os.environ.get("BENCH_STREAM", DEFAULT_STREAM)
    redis = make_redis(redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await redis.aclose()

    app = FastAPI(title="bench-bare", lifespan=lifespan)

    @app.post("/executed_obs_units/start", status_code=201)
    async def start(request: Request) -> JSONResponse:
        body = await request.body()
        entry = await redis.xadd(stream, {"env": body})
        entry_id = entry.decode() if isinstance(entry, bytes) else str(entry)
        return JSONResponse(
            {"id": str(uuid.uuid4()), "stream_id": entry_id, "status": "buffered"},
            status_code=201,
        )

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        "bench.bare_app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
