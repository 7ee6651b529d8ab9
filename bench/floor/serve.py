"""`python -m bench.floor.serve --port N`: the floor on the server `manage.py serve` runs Tollgate on.

The same uvicorn settings as gateway/management/commands/serve.py (uvloop, the httptools protocol with its header
deadline, lifespan on, no access log, one worker); tests/bench/test_floor.py fails if the two part. The command
itself cannot start the floor: it imports Tollgate's models, which need Tollgate's apps and database.
"""

import argparse
import functools

import uvicorn

from gateway.header_timeout import HeaderTimeoutProtocol

HEADER_TIMEOUT_SECONDS = 10.0  # serve's default


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        "bench.floor.asgi:application",
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http=functools.partial(HeaderTimeoutProtocol, header_timeout=HEADER_TIMEOUT_SECONDS),
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
