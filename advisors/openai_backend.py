"""Chat completions from any OpenAI-compatible server, over plain HTTP (stdlib ``urllib``).

``POST {base_url}/chat/completions`` with ``temperature 0`` and ``response_format={"type": "json_object"}``.
Robustness: a per-request timeout and an overall deadline, bounded retries with exponential backoff on 429,
5xx and connection errors (``Retry-After`` honoured up to ``max_backoff_s``), no redirects (the key must not
travel to another host), a cap on the response body size, and token usage read from ``usage``.

The API key is read from the environment variable named ``api_key_env`` *at each request*; it is never stored on
the object, logged, or shown in ``repr``. Without a key no ``Authorization`` header is sent (local servers such
as llama.cpp or vLLM usually need none).
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from traingym.advisors.completion import Completion
from traingym.advisors.errors import (
    AdvisorConnectionError,
    AdvisorError,
    AdvisorHTTPError,
    AdvisorTimeoutError,
    MalformedAnswerError,
    ResponseTooLargeError,
)

logger = logging.getLogger(__name__)

BASE_URL_ENV = "TRAINGYM_OPENAI_BASE_URL"
"""Environment variable with the server base URL (used when no ``base_url`` is given)."""
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_CHUNK = 16384


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None  # a 3xx becomes an HTTPError instead of re-sending the Authorization header elsewhere


class OpenAIChatBackend:
    """Transport for OpenAI-compatible Chat Completions servers.

    Args:
        model: model name sent in the request.
        base_url: server base URL, e.g. ``http://127.0.0.1:8080/v1``; default ``$TRAINGYM_OPENAI_BASE_URL``,
            else ``https://api.openai.com/v1``.
        api_key_env: name of the environment variable holding the API key.
        timeout_s: socket timeout per attempt, also the overall deadline for reading one response.
        max_retries: extra attempts after a retryable failure (429, 5xx, connection error).
        backoff_s: first backoff delay; doubles each retry, capped at ``max_backoff_s``.
        max_backoff_s: cap on any wait, including a server's ``Retry-After``.
        max_response_bytes: responses larger than this are rejected (``ResponseTooLargeError``).
        max_tokens: completion token budget sent to the server.
        json_mode: request ``response_format={"type": "json_object"}``.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = DEFAULT_API_KEY_ENV,
                 timeout_s: float = 20.0, max_retries: int = 2, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, max_response_bytes: int = 256_000, max_tokens: int = 256,
                 json_mode: bool = True) -> None:
        if not model or not isinstance(model, str):
            raise ValueError("model must be a non-empty string, e.g. 'openai:gpt-4o-mini'")
        url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {url!r}")
        if parsed.username or parsed.password:
            raise ValueError("base_url must not embed credentials; put the API key in an environment variable")
        if not api_key_env or not isinstance(api_key_env, str):
            raise ValueError("api_key_env must name an environment variable")
        for field, value in (("timeout_s", timeout_s), ("max_backoff_s", max_backoff_s)):
            if not value > 0:
                raise ValueError(f"{field} must be > 0, got {value}")
        if max_retries < 0 or backoff_s < 0 or max_response_bytes < 1024 or max_tokens < 1:
            raise ValueError("max_retries >= 0, backoff_s >= 0, max_response_bytes >= 1024 and max_tokens >= 1 "
                             f"required, got {max_retries}, {backoff_s}, {max_response_bytes}, {max_tokens}")
        self.model = model
        self.base_url = url
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_response_bytes = int(max_response_bytes)
        self.max_tokens = int(max_tokens)
        self.json_mode = bool(json_mode)
        self.name = f"openai:{model}"
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if _is_loopback(parsed.hostname):
            handlers.append(urllib.request.ProxyHandler({}))  # never send local traffic through a proxy
        self._opener = urllib.request.build_opener(*handlers)

    def complete(self, system: str, user: str) -> Completion:
        """Send one chat request (with retries); return the first choice's message and the token usage.

        Raises:
            AdvisorTimeoutError, AdvisorConnectionError, AdvisorHTTPError, ResponseTooLargeError,
            MalformedAnswerError: see the module docstring.
        """
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        if self.json_mode:
            payload["response_format"] = {"type": "json_object"}
        body = json.dumps(payload).encode("utf-8")
        attempt = 0
        while True:
            try:
                return _parse_completion(self._post(body))
            except (AdvisorConnectionError, AdvisorHTTPError) as error:
                retryable = isinstance(error, AdvisorConnectionError) or error.status in RETRY_STATUSES
                if not retryable or attempt >= self.max_retries:
                    raise
                delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
                if isinstance(error, AdvisorHTTPError) and error.retry_after is not None:
                    delay = min(self.max_backoff_s, error.retry_after)
                attempt += 1
                logger.info("%s: %s, retry %d/%d in %.2fs", self.name, error.reason, attempt,
                            self.max_retries, delay)
                time.sleep(delay)

    def _post(self, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers,
                                         method="POST")
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return self._read_capped(response, deadline)
        except urllib.error.HTTPError as error:
            status = error.code
            retry_after = _retry_after_s(error.headers.get("Retry-After") if error.headers else None)
            error.close()
            raise AdvisorHTTPError(status, f"{self.name}: HTTP {status}", retry_after=retry_after) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise AdvisorTimeoutError(f"{self.name}: no answer within {self.timeout_s:g}s") from None
            raise AdvisorConnectionError(f"{self.name}: cannot connect ({type(error.reason).__name__})") from None
        except TimeoutError:
            raise AdvisorTimeoutError(f"{self.name}: no answer within {self.timeout_s:g}s") from None
        except (ConnectionError, http.client.HTTPException, OSError) as error:
            if isinstance(error, AdvisorError):
                raise
            raise AdvisorConnectionError(f"{self.name}: connection failed ({type(error).__name__})") from None

    def _read_capped(self, response: http.client.HTTPResponse, deadline: float) -> bytes:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_response_bytes:
            raise ResponseTooLargeError(f"{self.name}: response of {length} bytes exceeds "
                                        f"max_response_bytes={self.max_response_bytes}")
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise AdvisorTimeoutError(f"{self.name}: response not complete within {self.timeout_s:g}s")
            chunk = response.read(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_response_bytes:
                raise ResponseTooLargeError(f"{self.name}: response exceeds "
                                            f"max_response_bytes={self.max_response_bytes}")
            chunks.append(chunk)

    def __repr__(self) -> str:
        return (f"OpenAIChatBackend(model={self.model!r}, base_url={self.base_url!r}, "
                f"api_key_env={self.api_key_env!r}, timeout_s={self.timeout_s:g}, max_retries={self.max_retries})")


def _parse_completion(raw: bytes) -> Completion:
    try:
        data = json.loads(raw.decode("utf-8"))
        content = data["choices"][0]["message"]["content"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError) as error:
        raise MalformedAnswerError(f"not a chat completion response ({type(error).__name__})") from None
    if not isinstance(content, str):
        raise MalformedAnswerError("chat completion content is not text")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Completion(text=content, prompt_tokens=_count(usage.get("prompt_tokens")),
                      completion_tokens=_count(usage.get("completion_tokens")))


def _count(value: object) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
