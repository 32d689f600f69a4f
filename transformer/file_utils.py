"""Local paths, http(s) and s3:// URLs resolved to local files, with a download cache.

A download is stored as ``sha256(url).sha256(etag)`` in the cache directory (plus a
``.json`` file recording the URL and ETag), so a changed remote file (new ETag) is
fetched again while an unchanged one is read from the cache. Files are written under
a temporary name unique to the process and renamed into place, and an fcntl lock per
cache entry makes concurrent processes download a URL once: a file at its final path
is always complete. ``read_utf8_lines`` is the line reader of the local text inputs (TSVs, corpora).
"""
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from urllib.parse import urlparse

import requests
from tqdm import tqdm

logger = logging.getLogger(__name__)

HTTP_TIMEOUT = (10, 60)  # seconds to connect, seconds between received bytes


class DownloadError(OSError):
    """A remote file could not be fetched; the message names the URL and the cause."""


def default_cache_dir():
    return os.environ.get("SPIKINGBERT_CACHE", os.path.expanduser("~/.cache/spikingbert/downloads"))


def url_to_filename(url, etag=None):
    name = hashlib.sha256(url.encode("utf-8")).hexdigest()
    if etag:
        name += "." + hashlib.sha256(etag.encode("utf-8")).hexdigest()
    return name


def cached_path(url_or_path, cache_dir=None):
    """Local path of ``url_or_path``: an existing local file as-is, a URL downloaded into the cache."""
    url_or_path = os.fspath(url_or_path)
    scheme = urlparse(url_or_path).scheme
    if scheme in ("http", "https", "s3"):
        return get_from_cache(url_or_path, cache_dir or default_cache_dir())
    if os.path.exists(url_or_path):
        return url_or_path
    if scheme in ("", "file"):
        raise FileNotFoundError(f"{url_or_path}: file not found")
    raise ValueError(f"{url_or_path}: unsupported URL scheme {scheme!r} (use a local path, http(s):// or s3://)")


def get_from_cache(url, cache_dir):
    """Path of the cached copy of ``url`` for its current ETag, downloading it when absent."""
    if url.startswith("s3://"):
        etag, download = s3_etag(url), s3_download
    else:
        etag, download = http_etag(url), http_download
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, url_to_filename(url, etag))
    if os.path.exists(path):
        return path
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(path):  # another process finished it while we waited
            return path
        logger.info("downloading %s to %s", url, path)
        write_atomically(path, lambda f: download(url, f), mode="wb")
        write_atomically(path + ".json", lambda f: json.dump({"url": url, "etag": etag}, f), mode="w")
    return path


def read_utf8_lines(path):
    """Yield ``(line_number, text)`` for every line of a UTF-8 text file, without its line ending.

    Lines end at ``\\n`` only (a stray carriage return inside a line stays in it) and a byte-order
    mark is dropped. A line that is not UTF-8 is a ValueError naming the file and line.
    """
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{line_number}: not valid UTF-8 ({e.reason})") from None
            yield line_number, line.rstrip("\r\n")


def write_atomically(path, write, mode):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


# ----------------------------------------------------------------------------
# http(s)

def http_request(method, url, **kwargs):
    try:
        response = requests.request(method, url, timeout=HTTP_TIMEOUT, allow_redirects=True, **kwargs)
    except requests.exceptions.ConnectionError as e:
        raise DownloadError(f"{url}: cannot connect to {urlparse(url).netloc} ({type(e).__name__})") from e
    except requests.exceptions.RequestException as e:
        raise DownloadError(f"{url}: request failed ({type(e).__name__}: {e})") from e
    return response


def raise_for_status(url, response):
    if response.status_code != 200:
        raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")


def http_etag(url):
    """ETag of ``url`` (None when the server sends none), from HEAD or, if HEAD is refused, GET headers."""
    response = http_request("HEAD", url)
    if response.status_code in (405, 501):
        with http_request("GET", url, stream=True) as response:
            raise_for_status(url, response)
            return response.headers.get("ETag")
    raise_for_status(url, response)
    return response.headers.get("ETag")


def http_download(url, file):
    with http_request("GET", url, stream=True) as response:
        raise_for_status(url, response)
        expected = response.headers.get("Content-Length")
        total = int(expected) if expected is not None else None
        received = 0
        try:
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(url), disable=None) as bar:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except requests.exceptions.RequestException as e:
            raise DownloadError(f"{url}: download interrupted after {received} bytes ({type(e).__name__})") from e
        if total is not None and received != total:
            raise DownloadError(f"{url}: download interrupted after {received} of {total} bytes")


# ----------------------------------------------------------------------------
# s3

def split_s3_url(url):
    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise ValueError(f"{url}: expected s3://bucket/key")
    return bucket, key


def s3_call(url, call):
    """Run ``call(client, bucket, key)`` and turn boto's failures into a DownloadError naming the cause."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, key = split_s3_url(url)
    try:
        return call(boto3.client("s3"), bucket, key)
    except NoCredentialsError as e:
        raise DownloadError(f"{url}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                            f"AWS_SECRET_ACCESS_KEY, or configure ~/.aws/credentials)") from e
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise DownloadError(f"{url}: not found in S3 ({code})") from e
        raise DownloadError(f"{url}: S3 error {code}: {e}") from e
    except BotoCoreError as e:
        raise DownloadError(f"{url}: S3 request failed ({type(e).__name__}: {e})") from e


def s3_etag(url):
    return s3_call(url, lambda client, bucket, key: client.head_object(Bucket=bucket, Key=key)["ETag"])


def s3_download(url, file):
    s3_call(url, lambda client, bucket, key: client.download_fileobj(bucket, key, file))
