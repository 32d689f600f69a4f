"""Local paths, http(s) and s3:// URLs resolved to local files and model folders, with a download cache.

A download is stored as ``sha256(url).sha256(etag)`` in the cache directory (plus a
``.json`` file recording the URL and ETag), so a changed remote file (new ETag) is
fetched again while an unchanged one is read from the cache. Files are written under
a temporary name unique to the process and renamed into place, and an fcntl lock per
cache entry makes concurrent processes download a URL once: a file at its final path
is always complete. ``read_utf8_lines`` is the line reader of the local text inputs (TSVs, corpora).

``model_dir`` turns the URL of a model folder (config.json, weights, vocab.txt fetched
one by one) or of an archive of one (.tar.gz, .tgz, .tar, .zip, extracted safely) into a
local folder in the cache, so every script's --teacher_model / --spiking_student_model /
--bert_model may be such a URL.
"""
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
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


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import (in the main thread): os.umask can only be read by setting it, which would race with
# threads creating files.
UMASK = _read_umask()


class WriteError(OSError):
    """A file could not be written (disk full, read-only folder, no permission); the message names it."""


# The errors of a disk that is full or may not be written; others (a download that broke, a missing source)
# keep their own message.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


@contextlib.contextmanager
def write_errors(path):
    """Turn the block's OSError of a full or unwritable disk into a one-line WriteError naming ``path``
    (an error of write() names no file)."""
    try:
        yield
    except WriteError:
        raise
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        error = WriteError(f"{path}: cannot write it ({e.strerror})")
        error.errno = e.errno
        raise error from None


def error_line(error):
    """The one line an error of bad input or of the disk is reported with: an OSError as "path: reason"."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return " ".join(str(error).splitlines())


def check_writable(path, flag):
    """Raise a one-line WriteError when the folder ``path`` (while it does not exist, the folder that would
    hold it) may not be written, before anything is."""
    existing = os.path.abspath(path)
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        error = WriteError(f"{flag} {path}: cannot write into {existing} (read-only or no permission)")
        error.errno = errno.EACCES
        raise error


def check_output_folder(path, flag):
    """``path`` (given by ``flag``) must be a folder or not exist yet, and be writable: a one-line ValueError or
    WriteError before anything is written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path} exists and is not a folder")
    check_writable(path, flag)


def write_atomically(path, write, mode="w"):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``; returns what
    ``write`` returned. ``mode`` is "w" (UTF-8 text) or "wb".

    The file gets the mode open() would give it (0666 less the umask), not mkstemp's private 0600. A failure
    or an interrupt removes the temporary; a kill leaves ``.NAME.tmp-XXXXXXXX`` beside ``path``, which
    transformer.checkpoint.remove_interrupted_writes clears. An OSError while writing is a WriteError naming
    ``path``.
    """
    directory, name = os.path.split(os.path.abspath(path))
    with write_errors(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=directory)
    try:
        with write_errors(path):
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                os.fchmod(fd, 0o666 & ~UMASK)
                result = write(f)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return result


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


# ----------------------------------------------------------------------------
# model folders

REMOTE_SCHEMES = ("http", "https", "s3")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
# Files of a model folder fetched from a folder URL: (names tried in order, required).
MODEL_FOLDER_FILES = ((("config.json",), True), (("model.safetensors", "pytorch_model.bin"), True),
                     (("vocab.txt",), False))


def is_remote(path_or_url):
    return urlparse(os.fspath(path_or_url)).scheme in REMOTE_SCHEMES


def model_dir(path_or_url, cache_dir=None):
    """A local model folder: a local path as it is; the URL of a folder or an archive fetched into the cache."""
    if not is_remote(path_or_url):
        return path_or_url
    cache_dir = cache_dir or default_cache_dir()
    if path_or_url.lower().endswith(ARCHIVE_SUFFIXES):
        archive = get_from_cache(path_or_url, cache_dir)
        return folder_with_config(unpacked(archive, path_or_url))
    return fetched_folder(path_or_url.rstrip("/"), cache_dir)


def fetched_folder(url, cache_dir):
    """The model files under folder ``url`` linked into one cache folder named after their cached copies."""
    found = {}
    for names, required in MODEL_FOLDER_FILES:
        for name in names:
            try:
                found[name] = get_from_cache(f"{url}/{name}", cache_dir)
                break
            except DownloadError as e:
                if "HTTP 404" not in str(e) and "not found in S3" not in str(e):
                    raise
        else:
            if required:
                raise DownloadError(f"{url}: no {' or '.join(names)} in the model folder")
    key = url_to_filename(url, "|".join(os.path.basename(found[name]) for name in sorted(found)))
    target = os.path.join(cache_dir, key + ".model")
    if not os.path.isdir(target):
        tmp = tempfile.mkdtemp(prefix=os.path.basename(target) + ".", suffix=".tmp", dir=cache_dir)
        for name, path in found.items():
            shutil.copyfile(path, os.path.join(tmp, name))
        try:
            os.rename(tmp, target)
        except OSError:  # another process put it there first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def unpacked(archive, url):
    """``archive`` extracted once beside itself (``<archive>.extracted``)."""
    target = archive + ".extracted"
    if not os.path.isdir(target):
        tmp = tempfile.mkdtemp(prefix=os.path.basename(target) + ".", suffix=".tmp", dir=os.path.dirname(archive))
        try:
            extract_archive(archive, tmp, url)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.isdir(target):
                raise
    return target


def extract_archive(archive, target, name=None):
    """Extract a zip or tar archive into ``target``, refusing links and members that would land outside it."""
    name = name or archive
    root = os.path.realpath(target)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [(m.filename, stat.S_ISLNK(m.external_attr >> 16)) for m in zf.infolist()]
            check_members(members, root, name)
            zf.extractall(target)
        return
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            check_members([(m.name, m.issym() or m.islnk()) for m in members], root, name)
            tf.extractall(target, members=members, filter="data")
    except tarfile.TarError as e:
        raise DownloadError(f"{name}: not a zip or tar archive ({e})") from None


def check_members(members, root, name):
    """Refuse archive members (name, is_link) that are links or whose path escapes ``root``."""
    for member, is_link in members:
        if is_link:
            raise DownloadError(f"{name}: archive member {member!r} is a link; refused")
        destination = os.path.realpath(os.path.join(root, member))
        if os.path.isabs(member) or "\\" in member or os.path.commonpath([root, destination]) != root:
            raise DownloadError(f"{name}: archive member {member!r} escapes the target folder; refused")


def folder_with_config(folder):
    """``folder`` or its single subfolder holding config.json (archives often wrap the files in one folder)."""
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    subfolders = [os.path.join(folder, d) for d in sorted(os.listdir(folder))
                  if os.path.isdir(os.path.join(folder, d))]
    for candidate in subfolders:
        if os.path.isfile(os.path.join(candidate, "config.json")):
            return candidate
    raise DownloadError(f"{folder}: the archive holds no config.json (top level or one folder down)")
