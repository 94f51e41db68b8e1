"""Client of the legacy Retarus HTTP Simple interface (PROVIDERS.md section 2): one recipient per call.

Every parameter travels in the query string, the credentials `user`/`pass` included (seed 002; no
request body is sent). The password therefore sits in a URL; it is masked in every error message and
in httpx's request log (`install_log_redaction`), and never appears in a repr. Parameters are checked
before the call (`qos` normal|express sent lowercase, `bc` <= 70, `ref` <= 192 US-ASCII or 70, `src`):
a bad one raises InvalidRequest and nothing is sent. GET /reports answers an unknown job with 400 (the
sandbox) or 404 (older servers); both are PermanentProviderError. The wire rules and the remaining
assumptions of this API live in `models.retarus_http`.
"""

from __future__ import annotations

import re

import httpx
from pydantic import SecretStr

from models.enums import Qos
from models.retarus_http import SEND_SUCCESS_STATUSES, HttpSimpleQos, HttpSimpleReport, HttpSimpleSend
from worker.errors import InvalidRequest
from worker.providers.base import (
    checked,
    install_log_redaction,
    map_http_errors,
    raise_for_status,
    unreadable,
)

#: A plausible job id: one printable token (Retarus ids look like J.20221116-102407.583-0lajfsfm...).
_JOB_ID = re.compile(r"[\x21-\x7e]{1,128}")


class RetarusHttpClient:
    """Send single SMS and read their status over Retarus HTTP Simple."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        username: str,
        password: SecretStr,
        *,
        name: str = "retarus_http",
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.name = name
        install_log_redaction()

    def __repr__(self) -> str:
        return (
            f"RetarusHttpClient(name={self.name!r}, base_url={self.base_url!r}, username={self.username!r})"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RetarusHttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _secrets(self) -> tuple[str, ...]:
        return (self._password.get_secret_value(),)

    def _credentials(self) -> list[tuple[str, str]]:
        return [("user", self.username), ("pass", self._password.get_secret_value())]

    def send(
        self,
        dst: str,
        msg: str,
        *,
        src: str | None = None,
        bc: str | None = None,
        dn: bool | None = None,
        qos: HttpSimpleQos | Qos | str | None = None,
        ref: str | None = None,
    ) -> str:
        """POST /sms for one recipient; returns the job id from the text/plain answer.

        `qos` may be given REST-style (`EXPRESS`/`NORMAL`, models.enums.Qos): it is sent lowercase.
        """
        values = {"dst": dst, "msg": msg, "src": src, "bc": bc, "dn": dn, "qos": qos, "ref": ref}
        request = checked(HttpSimpleSend, {key: value for key, value in values.items() if value is not None})
        return self.send_request(request)

    def send_request(self, request: HttpSimpleSend) -> str:
        """POST /sms with a prepared parameter set, all in the query string; returns the job id."""
        params = [*self._credentials(), *checked(HttpSimpleSend, request).query_params()]
        with map_http_errors(self.name, repeatable=False, secrets=self._secrets):
            response = self._http.post(f"{self.base_url}/sms", params=tuple(params))
        raise_for_status(response, self.name, secrets=self._secrets)
        job_id = response.text.strip()
        if response.status_code not in SEND_SUCCESS_STATUSES or not _JOB_ID.fullmatch(job_id):
            raise unreadable(
                response,
                self.name,
                "expected a job id as text/plain",
                repeatable=False,
                secrets=self._secrets,
            )
        return job_id

    def report(self, job_id: str) -> HttpSimpleReport:
        """GET /reports?jobid=: the job's processStatus/status pair."""
        if not _JOB_ID.fullmatch(job_id):
            raise InvalidRequest("jobid", "must be one printable word (the id POST /sms returned)")
        params = [("jobid", job_id), *self._credentials()]
        with map_http_errors(self.name, repeatable=True, secrets=self._secrets):
            response = self._http.get(f"{self.base_url}/reports", params=tuple(params))
        raise_for_status(response, self.name, secrets=self._secrets)
        try:
            return HttpSimpleReport.parse(response.text)
        except ValueError as exc:
            raise unreadable(
                response, self.name, str(exc).splitlines()[0], repeatable=True, secrets=self._secrets
            ) from None
