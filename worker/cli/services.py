"""`smsq` commands that run or prepare processes: migrate, sandbox, metrics, demo."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from worker.cli.common import console, fail, handled, runtime


def migrate() -> None:
    """Apply the database migrations (SMSQ_DATABASE_URL); safe to run again."""
    from models.migrate import current_revision, head_revision, upgrade

    rt = runtime(check_connections=False)  # the schema does not depend on provider settings
    url = rt.settings.database_url
    try:
        upgrade(url)
        revision = current_revision(url)
    except Exception as exc:
        fail(f"migration failed: {type(exc).__name__}: {exc}".splitlines()[0])
    at_head = " (head)" if revision == head_revision() else ""
    console.print(f"database at revision {revision}{at_head}")


def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    limit: Annotated[
        int, typer.Option(min=1, help="The sandbox's own limit: calls per credential per period.")
    ] = 100,
    period: Annotated[float, typer.Option(min=0.001, help="Its rate-limit period in seconds.")] = 60.0,
    speed: Annotated[float, typer.Option(min=0.001, help="Clock speed (1 = real time).")] = 1.0,
    epoch: Annotated[
        float | None,
        typer.Option(help="UNIX time the sped-up clock starts from (share it with SMSQ_CLOCK_EPOCH)."),
    ] = None,
) -> None:
    """Serve the provider sandbox (Retarus REST v1, HTTP Simple, Sendmode v2) until interrupted.

    It accepts the credentials SMSQ_PROVIDER_USERNAME/PASSWORD/API_KEY name (sandbox-user,
    sandbox-pass, sandbox-key when unset).
    """
    try:
        from sandbox.server import main as serve
    except ImportError as exc:  # the sandbox's web stack is the `sandbox` extra
        fail(f"the sandbox needs the sandbox extra: pip install 'smsq[sandbox]' ({exc.name} is missing)")
    serve(host, port, limit, period, speed, epoch)


def metrics(
    port: Annotated[int, typer.Option(help="Port to serve /metrics on.")] = 9464,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
) -> None:
    """Serve Prometheus metrics (database gauges, queue lengths, counters) until interrupted."""
    from worker.metrics.server import serve_metrics

    rt = runtime()
    try:
        server, _ = serve_metrics(rt, port=port, addr=host)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    console.print(f"serving Prometheus metrics on http://{host}:{port}/metrics (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


def demo(
    timeout_s: Annotated[
        float,
        typer.Option(
            "--timeout", min=1, help="Give up (exit 1) when jobs are not final after this many seconds."
        ),
    ] = 60.0,
) -> None:
    """Run everything locally: the sandbox, a worker, beat; send a mix of jobs and watch them finish."""
    from worker.cli.demo import DemoError, run_demo

    try:
        with handled():
            code = run_demo(timeout_s=timeout_s)
    except DemoError as exc:
        fail(str(exc))
    raise typer.Exit(code)
