"""The two forms and their validation (per job, per connection, CLI form), and the signature check."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.callbacks.conftest import SECRET, assert_signature_refused
from worker.callbacks.signing import SignatureError, sign, verify
from worker.callbacks.spec import CallbackSpec, callback_from_options, check_callback_url, resolve_callback
from worker.errors import ConfigurationError, InvalidRequest
from worker.settings import load_connections_file, load_settings


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com/hooks/sms",
        "http://localhost:8000/h",
        "http://127.0.0.1:9/h",
        "http://[::1]:80/",
    ],
)
def test_https_or_http_to_localhost_is_accepted(url: str) -> None:
    assert check_callback_url(url) == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://app.example.com/hooks", "https"),
        ("ftp://app.example.com/x", "https"),
        ("https://user:pw@app.example.com/x", "credentials"),
        ("https:///nohost", "https"),
        ("https://app.example.com:99999/x", "valid"),
    ],
)
def test_other_urls_are_refused_naming_the_rule(url: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        resolve_callback({"url": url}, default=None, has_secret=True, connection="default")
    assert info.value.field == "callback.url"
    assert words in info.value.rule


def test_exactly_one_form_and_a_queue_of_the_application() -> None:
    for given, words in (
        ({"url": "https://a.example/x", "task": "app.t", "queue": "q"}, "either"),
        ({}, "either"),
        ({"task": "app.outcome"}, "queue"),
        ({"task": "app.outcome", "queue": "smsq.send"}, "own"),
        ({"task": "app outcome", "queue": "q"}, "pattern"),
        ({"url": "https://a.example/x", "events": "some"}, "final"),
    ):
        with pytest.raises(InvalidRequest) as info:
            resolve_callback(given, default=None, has_secret=True, connection="default")
        assert words in str(info.value), given


def test_a_webhook_needs_the_connections_secret_and_false_opts_out_of_the_default() -> None:
    default = CallbackSpec(task="app.outcome", queue="app.q")
    with pytest.raises(InvalidRequest) as info:
        resolve_callback({"url": "https://a.example/x"}, default=None, has_secret=False, connection="c1")
    assert "callback_secret" in info.value.rule
    assert resolve_callback(None, default=default, has_secret=False, connection="c1") == {
        "task": "app.outcome",
        "queue": "app.q",
        "events": "final",
    }
    assert resolve_callback(False, default=default, has_secret=True, connection="c1") is None
    assert resolve_callback(None, default=None, has_secret=True, connection="c1") is None


def test_the_cli_form_maps_to_the_same_callback() -> None:
    assert callback_from_options(None, None) is None
    assert callback_from_options("https://a.example/x", None, "all") == {
        "url": "https://a.example/x",
        "events": "all",
    }
    assert callback_from_options(None, "app.outcome@app.q") == {
        "task": "app.outcome",
        "queue": "app.q",
        "events": "final",
    }


def test_per_connection_defaults_come_from_the_environment_and_the_connections_file(tmp_path: Path) -> None:
    settings = load_settings(
        provider_username="u",
        provider_password="p",
        callback_url="https://app.example.com/hooks",
        callback_secret="s3cret",
        callback_events="all",
    )
    default = settings.default_connection()
    assert default.default_callback() == CallbackSpec(url="https://app.example.com/hooks", events="all")
    assert "s3cret" not in repr(default)  # a SecretStr
    path = tmp_path / "connections.yaml"
    path.write_text(
        "tasks:\n  provider: sendmode\n  api_key: k\n  callback_task: app.outcome\n  callback_queue: app.q\n"
    )
    assert load_connections_file(path)["tasks"].default_callback() == CallbackSpec(
        task="app.outcome", queue="app.q"
    )
    path.write_text("hooks:\n  provider: sendmode\n  api_key: k\n  callback_url: https://app.example.com/h\n")
    with pytest.raises(ConfigurationError, match="callback_secret"):
        load_connections_file(path)
    path.write_text(
        "hooks:\n  provider: sendmode\n  api_key: k\n  callback_url: http://app.example.com/h\n  callback_secret: x\n"
    )
    with pytest.raises(ConfigurationError, match="https"):
        load_connections_file(path)


def test_the_signature_verifies_and_an_altered_or_replayed_body_fails() -> None:
    body = b'{"id":"e1","outcome":"delivered"}'
    header = sign(SECRET, body)
    assert abs(verify(SECRET, header, body) - time.time()) < 5
    assert_signature_refused(SECRET, header, body.replace(b"delivered", b"failed"))  # altered body
    assert_signature_refused("another-secret", header, body)  # not signed by this secret
    old = sign(SECRET, body, int(time.time()) - 301)
    assert_signature_refused(SECRET, old, body)  # replayed after the tolerance window
    future = sign(SECRET, body, int(time.time()) + 301)
    assert_signature_refused(SECRET, future, body)
    t, v1 = header.split(",")
    assert_signature_refused(SECRET, f"t={int(t[2:]) + 1},{v1}", body)  # timestamp changed
    for bad in ("", "v1=abc", "t=123", "garbage"):
        with pytest.raises(SignatureError):
            verify(SECRET, bad, body)
    assert verify(SECRET, old, body, tolerance_s=600)  # the tolerance is the receiver's choice
