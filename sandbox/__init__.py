"""smsq's provider simulator: one ASGI app serving Retarus REST v1, Retarus HTTP Simple and Sendmode v2
over real HTTP at their real paths, with the provider's behaviour on a sandbox clock.

    from models.clock import ManualClock
    from sandbox.app import create_app
    from sandbox.config import SandboxConfig
    from sandbox.server import serve_in_thread

    app = create_app(SandboxConfig(limit_calls=3), clock=ManualClock())
    with serve_in_thread(app) as url:        # "http://127.0.0.1:PORT"
        state = app.state.sandbox            # calls(), jobs(), fail_next(), hold(), release(), reset(), ...

Paths: `/rest/v1` (primary data center), `/dc2/rest/v1` (a second data center with its own jobs),
`/httpsimple/v1`, `/v2`, and the control API `/_sandbox` (control.py). Magic numbers: scenarios.py.

Modules: config (accepted credentials, limits, timing), state (memory, one lock), jobs (records and
reports), progress (recipient timelines), scenarios (magic numbers), limiter (real-time sliding window),
faults (knobs), pipeline (the path of every call), retarus / retarus_request / httpsimple / sendmode (the
APIs), control, app, server.

Where each ASSUMPTION beyond PROVIDERS.md is kept (one place each):
- Retarus error body, `jobIdsOnly=false`, default qos: retarus.py docstring.
- More than 3000 recipients -> 400; validityMin 1..4 and negatives clamp to 5: retarus_request.py.
- Validity counts from when a recipient is due (later of receipt and jobPeriod): progress.validity_start.
- Duplicate detection spans data centers (per credential): SandboxState.is_duplicate.
- HTTP Simple optional parameters, 201 text/plain, "OPEN" alone for an empty status: httpsimple.py.
- Sendmode INSUFFICIENT_CREDITS / 3, TOO_MANY_REQUESTS / 429, scheduledate formats, number and sender
  rules: sendmode.py docstring; opt-outs compared by digits: state._number_key.
- The rate limit is per credential label: a username shares one limit across REST v1 and HTTP Simple
  (one account), a Sendmode key has its own: config.py.
"""
