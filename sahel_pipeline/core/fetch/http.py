"""HTTP with the manners a weekly job needs: retries with backoff on 429 and 5xx (honouring Retry-After), one-line
errors, and secrets kept out of every message.

httpx is imported when a client is made, not with this module: its import (with rich, which it loads for its
command line) was 0.13 s of every run's start, and only pulls use it."""

from __future__ import annotations

import email.utils
import functools
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

Log = Callable[[str], None]
USER_AGENT = "sahel-pipeline/0.1 (conflict early warning)"


class FetchError(Exception):
    """A pull that cannot go on. The message is one line, names the provider and what to do, and holds no secret."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # requests per call, the first included
    backoff: float = 2.0  # seconds before the first retry, doubled after each
    max_wait: float = 300.0  # a longer Retry-After (a daily quota) fails the pull instead of stalling the run
    timeout: float = 120.0  # seconds for one response (a page of 5,000 events is a few megabytes)


DEFAULT_RETRY = RetryPolicy()


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret, as written and as form- or URL-encoded, replaced by ***."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, urllib.parse.quote_plus(secret), urllib.parse.quote(secret, safe="")}:
            text = text.replace(form, "***")
    return text


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds to wait: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def server_time(response: httpx.Response) -> int | None:
    """The provider's clock (its Date header) in Unix seconds, or None when it sends none."""
    try:
        return int(email.utils.parsedate_to_datetime(response.headers["date"]).timestamp())
    except (KeyError, TypeError, ValueError):
        return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default certificate check, made once per process: each client loading the CA bundle afresh costs
    about 50 ms of CPU, more than a short pull's own work."""
    import httpx

    return httpx.create_ssl_context()


class ProviderHttp:
    """One provider's HTTP client: retries transient failures and turns the rest into FetchError."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        secrets: Callable[[], Iterable[str]],
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        log: Log = print,
    ):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.secrets = secrets
        self.retry = retry
        self.sleep = sleep
        self.log = log
        import httpx

        self.client = httpx.Client(
            timeout=retry.timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=True, verify=tls_context()
        )

    def close(self) -> None:
        self.client.close()

    def fail(self, message: str) -> FetchError:
        return FetchError(redact(f"{self.provider}: {message}", self.secrets()))

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """The response, after retrying 429, 5xx and network errors; other statuses are the caller's to judge."""
        import httpx

        url = f"{self.base_url}{path}"
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.TransportError as err:
                if last:
                    raise self.fail(f"cannot reach {url} ({type(err).__name__}: {err}) "
                                    f"after {attempt} attempts") from None
                wait = self.retry.backoff * 2 ** (attempt - 1)
                self.log(f"{self.provider}: {type(err).__name__} on {path}; retrying in {wait:.0f} s "
                         f"(attempt {attempt} of {self.retry.attempts})")
                self.sleep(wait)
                continue
            status = response.status_code
            if status != 429 and status < 500:
                return response
            asked = retry_after_seconds(response.headers.get("retry-after"), time.time())
            if asked is not None and asked > self.retry.max_wait:
                raise self.fail(f"{status} on {path}: asked to wait {asked / 3600:.1f} h before retrying "
                                "(a rate limit or quota): try again later")
            if last:
                raise self.fail(f"{status} on {path} after {attempt} attempts: {snippet(response)}")
            wait = asked if asked is not None else self.retry.backoff * 2 ** (attempt - 1)
            self.log(f"{self.provider}: {status} on {path}; retrying in {wait:.0f} s "
                     f"(attempt {attempt} of {self.retry.attempts})")
            self.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises


class ApiClient:
    """What both providers' clients share: their HTTP, and closing it (also as a context manager)."""

    def __init__(self, provider: str, base_url: str, secrets: Callable[[], Iterable[str]], retry: RetryPolicy,
                 sleep: Callable[[float], None], log: Log):
        self.log = log
        self.http = ProviderHttp(provider, base_url, secrets, retry, sleep, log)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def snippet(response: httpx.Response, limit: int = 200) -> str:
    """What a provider said about an error, on one line: its JSON message when it sends one, else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error_description", "message", "messages", "error", "detail"):
            if body.get(key):
                value = body[key]
                text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
                return " ".join(text.split())[:limit]
    text = " ".join(response.text.split())
    return text[:limit] or f"HTTP {response.status_code}"
