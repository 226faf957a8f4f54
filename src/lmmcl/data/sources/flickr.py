"""Fetch Flickr images through the Flickr API (``flickrapi``), politely and verifiably.

* Credentials come only from ``FLICKR_API_KEY`` / ``FLICKR_API_SECRET``
  (:func:`credentials_from_env` raises a clear error naming them before anything is fetched).
* ``photos.getSizes`` gives the available sizes; the last entry is the largest.
* A photo id is taken only from a Flickr static-image URL in the study's pattern
  (``extract_photo_id`` in ``utils/download_pixmocount_and_convert_to_llava.py`` of
  jessemelpolio/LMM_CL: ``…/<id>_<secret>_<size letter>.jpg``), and here only on a
  ``staticflickr.com`` host: digits in any other URL name no Flickr photo.
* Calls are spaced by ``min_interval`` seconds; HTTP 429 is retried with exponential backoff
  (``backoff * 2**attempt``, honouring ``Retry-After`` on image downloads), other transient
  errors (connection, timeout, 5xx) after ``backoff`` seconds, up to ``max_retries`` times.
* ``rest_url`` overrides the REST endpoint (``FlickrAPI.REST_URL``), so tests point it at a
  loopback server. Nothing here logs or returns the credentials (see ``common.redact``).
"""
from __future__ import annotations

import logging
import os
import re
import time
from urllib.parse import urlsplit

from .common import redact

# the study's pattern, matched on the URL's path: /<photo id>_<secret>_<size letter>.jpg
PHOTO_ID = re.compile(r"/(\d+)_[a-zA-Z0-9]+_[a-zA-Z]\.jpg$")
STATIC_HOST = re.compile(r"(?:^|\.)staticflickr\.com$")


class CredentialsError(ValueError):
    pass


class FetchError(Exception):
    """A permanent failure for one image (the message is the recorded reason)."""


class _Retryable(Exception):
    def __init__(self, message: str, status: int | None = None, wait: float | None = None):
        super().__init__(message)
        self.status = status
        self.wait = wait


def credentials_from_env() -> tuple[str, str]:
    key, secret = os.environ.get("FLICKR_API_KEY", ""), os.environ.get("FLICKR_API_SECRET", "")
    missing = [n for n, v in (("FLICKR_API_KEY", key), ("FLICKR_API_SECRET", secret)) if not v.strip()]
    if missing:
        raise CredentialsError(
            f"Flickr credentials missing: set the environment variable(s) {missing} "
            "(a Flickr API key and its secret, https://www.flickr.com/services/apps/create/) "
            "before fetching PixMo-Count images; nothing was downloaded")
    return key.strip(), secret.strip()


def http_url(url) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host (what can be downloaded)."""
    try:
        parts = urlsplit(str(url or "").strip())
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. a malformed IPv6 host
        return False


def photo_id_from_url(url: str) -> str | None:
    """The Flickr photo id of a static-image URL ``http(s)://<*.>staticflickr.com/…/<id>_<secret>_<size>.jpg``,
    else None (such a URL is downloaded as it is, never looked up by id)."""
    if not http_url(url):
        return None
    parts = urlsplit(str(url).strip())
    if not STATIC_HOST.search(parts.hostname or ""):
        return None
    m = PHOTO_ID.search(parts.path)
    return m.group(1) if m else None


class FlickrClient:
    def __init__(self, api_key: str, api_secret: str, *, rest_url: str | None = None,
                 min_interval: float = 1.1, max_retries: int = 5, backoff: float = 5.0,
                 timeout: float = 10.0, sleep=time.sleep):
        import flickrapi
        import requests

        for name in ("flickrapi", "requests_oauthlib", "oauthlib", "urllib3"):
            logging.getLogger(name).setLevel(logging.CRITICAL)  # their debug lines carry the key
        self.api = flickrapi.FlickrAPI(api_key, api_secret, format="parsed-json", store_token=False,
                                       timeout=timeout)
        if rest_url:
            self.api.REST_URL = rest_url
        self.session = requests.Session()
        self.secrets = (api_key, api_secret)
        self.min_interval, self.max_retries, self.backoff = min_interval, max_retries, backoff
        self.timeout, self.sleep = timeout, sleep
        self._last = 0.0
        self.stats = {"api_calls": 0, "downloads": 0, "retries_429": 0, "retries_other": 0}

    # ------------------------------------------------------------------ plumbing
    def _throttle(self):
        wait = self._last + self.min_interval - time.monotonic()
        if wait > 0:
            self.sleep(wait)
        self._last = time.monotonic()

    def _with_retries(self, fn, what: str):
        attempt = 0
        while True:
            self._throttle()
            try:
                return fn()
            except _Retryable as e:
                if attempt >= self.max_retries:
                    raise FetchError(f"{what}: gave up after {attempt + 1} attempts ({e})") from None
                if e.status == 429:
                    self.stats["retries_429"] += 1
                    wait = max(self.backoff * 2 ** attempt, e.wait or 0.0)
                else:
                    self.stats["retries_other"] += 1
                    wait = self.backoff
                self.sleep(wait)
                attempt += 1

    def _clean(self, text: str) -> str:
        return redact(str(text), self.secrets)

    # ------------------------------------------------------------------ API
    def sizes(self, photo_id: str) -> list[dict]:
        """``photos.getSizes`` entries (smallest first, as Flickr lists them)."""
        import requests
        from flickrapi.exceptions import FlickrError

        def call():
            self.stats["api_calls"] += 1
            try:
                rsp = self.api.photos.getSizes(photo_id=photo_id)
            except FlickrError as e:
                m = re.search(r"Status code (\d+)", str(e))
                status = int(m.group(1)) if m else None
                if status == 429 or (status is not None and status >= 500):
                    raise _Retryable(f"HTTP {status}", status) from None
                raise FetchError(f"getSizes failed: {self._clean(e)}") from None
            except (requests.ConnectionError, requests.Timeout) as e:
                raise _Retryable(f"{type(e).__name__}") from None
            except ValueError as e:  # not JSON
                raise FetchError(f"getSizes: unreadable reply ({self._clean(e)})") from None
            sizes = (rsp.get("sizes") or {}).get("size") or []
            if not sizes:
                raise FetchError("getSizes: no sizes listed")
            return sizes

        return self._with_retries(call, f"getSizes {photo_id}")

    def largest_url(self, photo_id: str) -> str:
        return self.sizes(photo_id)[-1]["source"]

    def download(self, url: str) -> bytes:
        import requests

        def call():
            self.stats["downloads"] += 1
            try:
                r = self.session.get(url, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as e:
                raise _Retryable(type(e).__name__) from None
            if r.status_code == 429 or r.status_code >= 500:
                ra = r.headers.get("Retry-After", "")
                raise _Retryable(f"HTTP {r.status_code}", r.status_code,
                                 float(ra) if ra.replace(".", "", 1).isdigit() else None)
            if r.status_code != 200:
                raise FetchError(f"HTTP {r.status_code} for image")
            if not r.content:
                raise FetchError("empty image download")
            return r.content

        return self._with_retries(call, "image download")
