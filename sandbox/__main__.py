"""`python -m sandbox --host 127.0.0.1 --port 8080 [--limit 100 --period 60] [--speed 1 --epoch T]`."""

from __future__ import annotations

import argparse

from sandbox.config import DEFAULT_LIMIT_CALLS, DEFAULT_LIMIT_PERIOD_S
from sandbox.server import main


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Serve the smsq provider sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT_CALLS, help="calls per credential per period"
    )
    parser.add_argument(
        "--period", type=float, default=DEFAULT_LIMIT_PERIOD_S, help="rate-limit period, seconds"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="sandbox clock speed (1 = real time)")
    parser.add_argument("--epoch", type=float, default=None, help="UNIX time the sped-up clock starts from")
    args = parser.parse_args(argv)
    main(args.host, args.port, args.limit, args.period, args.speed, args.epoch)


if __name__ == "__main__":
    cli()
