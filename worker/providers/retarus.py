"""Client of the Retarus SMS for Applications REST API v1 (PROVIDERS.md section 1).

Sends go to the first base URL (the primary, or the HA send endpoint). A job lives in one data
center only, so a lookup tries the base URLs in order and moves on only when one answers 404;
the job listing asks every data center and merges. The client never reads settings: it is given
a ready `httpx.Client` with Basic auth set (see `worker.providers.build_client`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from pydantic import TypeAdapter

from models.retarus import (
    MAX_LISTING_LIMIT,
    MAX_LISTING_WINDOW_DAYS,
    JobListEntry,
    JobReport,
    JobRequest,
    JobResponse,
    RecipientReport,
    VersionInfo,
)
from worker.errors import DuplicateJob, InvalidRequest, PermanentProviderError
from worker.providers.base import (
    checked,
    map_http_errors,
    provider_message,
    raise_for_status,
    read_body,
    safe_url,
    unreadable,
)

_JOB_RESPONSE = TypeAdapter(JobResponse)
_JSON_HEADERS = {"Content-Type": "application/json"}
_JOB_REPORT = TypeAdapter(JobReport)
_RECIPIENT_REPORTS = TypeAdapter(list[RecipientReport])
_JOB_LIST = TypeAdapter(list[JobListEntry])
_VERSION = TypeAdapter(VersionInfo)

#: The widest interval one GET /jobs may cover.
LISTING_WINDOW = timedelta(days=MAX_LISTING_WINDOW_DAYS)


def listing_windows(from_ts: datetime, to_ts: datetime) -> list[tuple[datetime, datetime]]:
    """Split [from_ts, to_ts] into contiguous windows of at most 30 days (each starts where one ends)."""
    if from_ts.tzinfo is None or to_ts.tzinfo is None:
        raise InvalidRequest("fromTs" if from_ts.tzinfo is None else "toTs", "must be timezone-aware")
    if to_ts < from_ts:
        raise InvalidRequest("toTs", "must not be before fromTs")
    windows = []
    start = from_ts
    while True:
        end = min(start + LISTING_WINDOW, to_ts)
        windows.append((start, end))
        if end >= to_ts:
            return windows
        start = end


class RetarusClient:
    """Send jobs and read their reports over Retarus REST v1."""

    def __init__(self, http: httpx.Client, base_urls: Sequence[str], *, name: str = "retarus") -> None:
        if not base_urls:
            raise ValueError("at least one base URL is required")
        self._http = http
        self.base_urls = tuple(url.rstrip("/") for url in base_urls)
        self.name = name

    def __repr__(self) -> str:
        return f"RetarusClient(name={self.name!r}, base_urls={list(self.base_urls)!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RetarusClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- send ---------------------------------------------------------------------------------------

    def send_job(self, job: JobRequest) -> str:
        """POST /jobs to the primary base URL; returns the provider's job id.

        Raises DuplicateJob on 409 (duplicateDetection: an equal job was accepted in the last 10 minutes),
        PermanentProviderError on 400/422 and other refusals, DeliveryUnknown when the request may have
        arrived but no readable answer (or no jobId) came back. The job is validated again first
        (validityMin 0 or 5..2880, maxParts 1..20, src, billcode, 3000 recipients, ...): a bad value
        raises InvalidRequest naming the field, and nothing is sent.
        """
        return self.post_job(checked(JobRequest, job).model_dump(mode="json", exclude_none=True))

    def post_job(self, body: dict[str, Any]) -> str:
        """POST /jobs with `body` as it is: the JSON form of a validated `JobRequest`
        (`model_dump(mode="json", exclude_none=True)`). The send path validates each call once, stores
        this exact body with its submission, and posts it (a resend after "absent" posts it again,
        byte for byte the same request). Answers as `send_job`."""
        with map_http_errors(self.name, repeatable=False):
            response = self._http.post(
                f"{self.base_urls[0]}/jobs", content=orjson.dumps(body), headers=_JSON_HEADERS
            )
        if response.status_code == 409:
            raise DuplicateJob(self.name, f"duplicate job refused: {provider_message(response)}", 409)
        raise_for_status(response, self.name)
        job_id = read_body(response, _JOB_RESPONSE, self.name, repeatable=False).job_id
        if not job_id:
            raise unreadable(response, self.name, "no jobId in the answer", repeatable=False)
        return job_id

    # --- lookups ------------------------------------------------------------------------------------

    def job_report(self, job_id: str) -> JobReport:
        """GET /jobs/{job_id} from whichever data center holds the job."""
        response = self._lookup(f"/jobs/{job_id}", params=None)
        return read_body(response, _JOB_REPORT, self.name, repeatable=True)

    def recipient_reports(self, job_id: str) -> list[RecipientReport]:
        """GET /sms?jobId= from whichever data center holds the job: one report per recipient."""
        response = self._lookup("/sms", params={"jobId": job_id})
        return read_body(response, _RECIPIENT_REPORTS, self.name, repeatable=True)

    def version(self) -> VersionInfo:
        """GET /version (the first data center that answers)."""
        return read_body(self._lookup("/version", params=None), _VERSION, self.name, repeatable=True)

    def list_jobs(
        self, *, from_ts: datetime, to_ts: datetime, open: bool | None = None, page_size: int = 100
    ) -> list[str]:
        """Job ids received between from_ts and to_ts, from every data center, each once, in order.

        `open=True` asks for unfinished jobs only. Ranges over 30 days are split into windows; every
        window is read page by page (offset/limit) until a page comes back shorter than `page_size`.
        `jobIdsOnly=true` is always sent (the only value the API supports); `page_size` is the `limit`,
        1..1000 (InvalidRequest otherwise, before any call).
        """
        if not 1 <= page_size <= MAX_LISTING_LIMIT:
            raise InvalidRequest("limit", f"page_size must be 1..{MAX_LISTING_LIMIT}, got {page_size}")
        windows = listing_windows(from_ts, to_ts)
        seen: dict[str, None] = {}
        for base_url in self.base_urls:
            for start, end in windows:
                self._list_window(base_url, start, end, open, page_size, seen)
        return list(seen)

    def _list_window(
        self,
        base_url: str,
        start: datetime,
        end: datetime,
        open: bool | None,
        page_size: int,
        seen: dict[str, None],
    ) -> None:
        offset = 0
        previous: list[str] | None = None
        while True:
            params: dict[str, Any] = {
                "jobIdsOnly": "true",
                "fromTs": start.isoformat(),
                "toTs": end.isoformat(),
                "offset": offset,
                "limit": page_size,
            }
            if open is not None:
                params["open"] = "true" if open else "false"
            with map_http_errors(self.name, repeatable=True):
                response = self._http.get(f"{base_url}/jobs", params=params)
            if response.status_code == 404:  # this data center has nothing for us
                return
            raise_for_status(response, self.name)
            entries = read_body(response, _JOB_LIST, self.name, repeatable=True)
            page = [entry.job_id for entry in entries if entry.job_id]
            seen.update(dict.fromkeys(page))
            # A page shorter than the limit is the last. The same page twice means the provider
            # ignores offset, and asking again would loop forever.
            if len(entries) < page_size or page == previous:
                return
            previous = page
            offset += len(page)

    def _lookup(self, path: str, params: dict[str, str] | None) -> httpx.Response:
        """GET `path` from each base URL in turn, moving on only on 404 (data-center failover)."""
        missing: list[str] = []
        for base_url in self.base_urls:
            with map_http_errors(self.name, repeatable=True):
                response = self._http.get(f"{base_url}{path}", params=params)
            if response.status_code == 404:
                missing.append(safe_url(response.request.url))
                continue
            raise_for_status(response, self.name)
            return response
        raise PermanentProviderError(self.name, f"not found in any data center: {', '.join(missing)}", 404)
