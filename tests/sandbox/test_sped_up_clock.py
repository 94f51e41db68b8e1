"""A job with jobPeriod, a blackout and a short validity on the sped-up clock (`smsq sandbox --speed`),
read over real HTTP as a worker would: each recipient goes exactly where the contract says."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx

from models.clock import SpedUpClock
from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.server import serve_in_thread

SPEED = 3600.0  # one sandbox hour per real second


def test_job_progresses_on_the_sped_up_clock_recipient_by_recipient():
    clock = SpedUpClock(SPEED)
    app = create_app(SandboxConfig(), clock=clock)
    with (
        serve_in_thread(app) as url,
        httpx.Client(base_url=f"{url}/rest/v1", auth=("sandbox-user", "sandbox-pass")) as http,
    ):
        now = clock.now()
        period = now + timedelta(minutes=60)
        blackout = f"{period.isoformat()}/{(period + timedelta(minutes=20)).isoformat()}"  # counts as 1 h
        body = {
            "options": {"jobPeriod": period.isoformat(), "validityMin": 40, "statusRequested": True},
            "messages": [
                {
                    "text": "Windows",
                    "recipients": [
                        {"dst": "+4917620000100", "customerRef": "free"},
                        {"dst": "+4917620000101", "customerRef": "blacked", "blackoutPeriods": [blackout]},
                    ],
                }
            ],
        }
        job_id = http.post("/jobs", json=body).json()["jobId"]

        def states() -> dict[str, tuple[str, str | None]]:
            return {
                r["customerRef"]: (r["processStatus"], r.get("status"))
                for r in http.get("/sms", params={"jobId": job_id}).json()
            }

        # Before jobPeriod (60 sandbox minutes = 1 s): both wait
        assert states() == {"free": ("OPEN", None), "blacked": ("OPEN", None)}
        assert http.get(
            "/jobs",
            params={
                "jobIdsOnly": "true",
                "open": "true",
                "fromTs": (now - timedelta(hours=1)).isoformat(),
                "toTs": (now + timedelta(hours=1)).isoformat(),
            },
        ).json() == [{"jobId": job_id}]
        time.sleep(70 * 60 / SPEED)
        # After jobPeriod: the free one is delivered within seconds; the blacked-out one is held (1-hour minimum)
        assert states()["free"] == ("DONE", "SUC_FIN")
        assert states()["blacked"] == ("OPEN", None)
        assert (
            "finishedTs" not in http.get(f"/jobs/{job_id}").json()
            or http.get(f"/jobs/{job_id}").json()["finishedTs"] is None
        )
        time.sleep(35 * 60 / SPEED)
        # Validity (40 min from jobPeriod: +100 min) ends inside the blackout (+60..+120 min): never sent, so
        # CANCELED with an empty status (TIMEOUT would mean "sent, but validity exceeded")
        blacked = next(
            r for r in http.get("/sms", params={"jobId": job_id}).json() if r["customerRef"] == "blacked"
        )
        assert (blacked["processStatus"], blacked["status"]) == ("CANCELED", None)
        assert blacked.get("sentTs") is None
        report = http.get(f"/jobs/{job_id}").json()
        assert report["finishedTs"] is not None
