"""cached_path against a local HTTP server and moto's S3."""
import collections
import hashlib
import io
import multiprocessing
import os
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto import mock_aws

import spiking_bert_general_distill as general
from distill_fixtures import make_student_config, make_teacher, write_pregenerated
from transformer.file_utils import DownloadError, cached_path, model_dir, url_to_filename


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``: path -> (body, etag); ``server.broken`` paths die mid-body."""

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.respond(send_body=False)

    def do_GET(self):
        self.respond(send_body=True)

    def respond(self, send_body):
        server = self.server
        server.requests[self.command, self.path] += 1
        server.times[self.command].append(time.monotonic())
        if self.path not in server.files:
            self.send_error(404)
            return
        body, etag = server.files[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        if not send_body:
            return
        if self.path in server.broken:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        chunk = max(1, len(body) // 10)
        for start in range(0, len(body), chunk):
            if start:
                time.sleep(server.chunk_delay)
            self.wfile.write(body[start : start + chunk])
            self.wfile.flush()


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.broken, httpd.chunk_delay = {}, set(), 0.0
    httpd.requests = collections.Counter()
    httpd.times = collections.defaultdict(list)
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def cache_files(cache_dir):
    """Cache entries proper (lock files excluded)."""
    return sorted(name for name in os.listdir(cache_dir) if not name.endswith(".lock"))


def test_local_paths(tmp_path):
    local = tmp_path / "weights.bin"
    local.write_bytes(b"x")
    assert cached_path(str(local)) == str(local)
    with pytest.raises(FileNotFoundError, match="absent.bin: file not found"):
        cached_path(str(tmp_path / "absent.bin"))
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        cached_path("ftp://example.com/a")


def test_http_hit_and_etag_change(server, tmp_path):
    server.files["/model.bin"] = (b"first version " * 1000, '"v1"')
    url = server.url + "/model.bin"
    first = cached_path(url, cache_dir=str(tmp_path))
    assert os.path.basename(first) == (
        hashlib.sha256(url.encode()).hexdigest() + "." + hashlib.sha256(b'"v1"').hexdigest()
    )
    assert open(first, "rb").read() == b"first version " * 1000
    assert cached_path(url, cache_dir=str(tmp_path)) == first
    assert server.requests["GET", "/model.bin"] == 1  # the second call only asked for the ETag
    assert server.requests["HEAD", "/model.bin"] == 2

    server.files["/model.bin"] = (b"second version", '"v2"')
    second = cached_path(url, cache_dir=str(tmp_path))
    assert second != first and os.path.basename(second) == url_to_filename(url, '"v2"')
    assert open(second, "rb").read() == b"second version"
    assert open(first, "rb").read() == b"first version " * 1000
    assert server.requests["GET", "/model.bin"] == 2


def test_http_errors_name_url_and_cause(server, tmp_path):
    missing = server.url + "/missing.bin"
    with pytest.raises(DownloadError, match=f"{missing}: HTTP 404"):
        cached_path(missing, cache_dir=str(tmp_path))

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = f"http://127.0.0.1:{closed_port}/model.bin"
    with pytest.raises(DownloadError, match=f"{unreachable}: cannot connect to 127.0.0.1:{closed_port}"):
        cached_path(unreachable, cache_dir=str(tmp_path))
    assert cache_files(tmp_path) == []


def test_broken_connection_leaves_no_file(server, tmp_path):
    server.files["/broken.bin"] = (b"0123456789" * 10_000, '"b1"')
    server.broken.add("/broken.bin")
    url = server.url + "/broken.bin"
    with pytest.raises(DownloadError, match=f"{url}: download interrupted"):
        cached_path(url, cache_dir=str(tmp_path))
    assert cache_files(tmp_path) == []

    server.broken.clear()  # the next try starts from scratch and succeeds
    path = cached_path(url, cache_dir=str(tmp_path))
    assert open(path, "rb").read() == b"0123456789" * 10_000


def test_two_processes_fetch_the_same_url(server, tmp_path):
    body = os.urandom(200_000)
    server.files["/shared.bin"] = (body, '"s1"')
    server.chunk_delay = 0.1  # a slow body (1 s) keeps both processes inside the download together
    url = server.url + "/shared.bin"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        paths = pool.starmap(cached_path, [(url, str(tmp_path))] * 2)
    assert paths[0] == paths[1]
    assert open(paths[0], "rb").read() == body
    assert server.requests["GET", "/shared.bin"] == 1
    # Both processes asked while the one body was still streaming (it takes 9 delays to send).
    assert len(server.times["HEAD"]) == 2
    assert max(server.times["HEAD"]) < server.times["GET"][0] + 9 * server.chunk_delay
    assert cache_files(tmp_path) == [os.path.basename(paths[0]), os.path.basename(paths[0]) + ".json"]


@pytest.fixture
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_s3_download_and_etag_change(aws_credentials, tmp_path):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="bert/vocab.txt", Body=b"[PAD]\n[UNK]\n")
        etag = s3.head_object(Bucket="models", Key="bert/vocab.txt")["ETag"]
        url = "s3://models/bert/vocab.txt"
        path = cached_path(url, cache_dir=str(tmp_path))
        assert os.path.basename(path) == url_to_filename(url, etag)
        assert open(path, "rb").read() == b"[PAD]\n[UNK]\n"
        assert cached_path(url, cache_dir=str(tmp_path)) == path

        s3.put_object(Bucket="models", Key="bert/vocab.txt", Body=b"[PAD]\n[UNK]\n[CLS]\n")
        updated = cached_path(url, cache_dir=str(tmp_path))
        assert updated != path and open(updated, "rb").read() == b"[PAD]\n[UNK]\n[CLS]\n"

        with pytest.raises(DownloadError, match="s3://models/absent.txt: not found in S3"):
            cached_path("s3://models/absent.txt", cache_dir=str(tmp_path))


def test_s3_without_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(DownloadError, match="s3://models/vocab.txt: no AWS credentials found"):
        cached_path("s3://models/vocab.txt", cache_dir=str(tmp_path / "cache"))


def test_default_cache_dir_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKINGBERT_CACHE", str(tmp_path / "env-cache"))
    server.files["/a.txt"] = (b"a", '"a"')
    path = cached_path(server.url + "/a.txt")
    assert os.path.dirname(path) == str(tmp_path / "env-cache")


# ----------------------------------------------------------------------------
# model folders from URLs

def model_folder_files(tmp_path):
    """The files of a tiny teacher folder (config.json, model.safetensors, vocab.txt) as bytes."""
    folder = make_teacher(str(tmp_path / "source" / "teacher"))
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def tar_gz(files, prefix=""):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, body in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def test_model_folder_url_is_fetched_file_by_file(server, tmp_path):
    files = model_folder_files(tmp_path)
    assert sorted(files) == ["config.json", "model.safetensors", "vocab.txt"]
    for name, body in files.items():
        server.files[f"/teacher/{name}"] = (body, f'"{name}"')
    local = model_dir(server.url + "/teacher/", cache_dir=str(tmp_path / "cache"))
    assert {name: open(os.path.join(local, name), "rb").read() for name in os.listdir(local)} == files
    assert model_dir(server.url + "/teacher", cache_dir=str(tmp_path / "cache")) == local
    assert server.requests["GET", "/teacher/model.safetensors"] == 1
    assert server.requests["GET", "/teacher/pytorch_model.bin"] == 0

    del server.files["/teacher/model.safetensors"]
    with pytest.raises(DownloadError, match="no model.safetensors or pytorch_model.bin in the model folder"):
        model_dir(server.url + "/teacher", cache_dir=str(tmp_path / "other-cache"))
    assert model_dir(str(tmp_path / "source" / "teacher")) == str(tmp_path / "source" / "teacher")


def test_model_archive_url_is_extracted_once_and_unsafe_archives_are_refused(server, tmp_path):
    files = model_folder_files(tmp_path)
    server.files["/teacher.tar.gz"] = (tar_gz(files, prefix="teacher/"), '"a1"')
    local = model_dir(server.url + "/teacher.tar.gz", cache_dir=str(tmp_path / "cache"))
    assert os.path.basename(local) == "teacher" and sorted(os.listdir(local)) == sorted(files)
    assert open(os.path.join(local, "model.safetensors"), "rb").read() == files["model.safetensors"]
    assert model_dir(server.url + "/teacher.tar.gz", cache_dir=str(tmp_path / "cache")) == local

    server.files["/evil.tar.gz"] = (tar_gz({"config.json": b"{}", "../../evil.txt": b"pwned"}), '"e1"')
    with pytest.raises(DownloadError, match="escapes the target folder; refused"):
        model_dir(server.url + "/evil.tar.gz", cache_dir=str(tmp_path / "cache"))
    assert not (tmp_path / "evil.txt").exists()
    assert not [name for name in os.listdir(tmp_path / "cache") if name.endswith(".extracted")
                and "evil" in name]


def test_model_folder_in_s3(aws_credentials, tmp_path):
    files = model_folder_files(tmp_path)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        for name, body in files.items():
            s3.put_object(Bucket="models", Key=f"teacher/{name}", Body=body)
        local = model_dir("s3://models/teacher", cache_dir=str(tmp_path / "cache"))
    assert {name: open(os.path.join(local, name), "rb").read() for name in os.listdir(local)} == files


def test_general_distillation_takes_its_teacher_from_a_url(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKINGBERT_CACHE", str(tmp_path / "cache"))
    files = model_folder_files(tmp_path)
    server.files["/teacher.tar.gz"] = (tar_gz(files), '"t1"')
    out = tmp_path / "out"
    general.main(["--pregenerated_data", write_pregenerated(str(tmp_path / "data"), epochs=1, examples=4),
                  "--teacher_model", server.url + "/teacher.tar.gz",
                  "--spiking_student_model", make_student_config(str(tmp_path / "student")),
                  "--output_dir", str(out), "--train_batch_size", "2", "--max_seq_length", "32",
                  "--num_train_epochs", "1"])
    assert (out / "model.safetensors").is_file()
    assert (out / "vocab.txt").read_bytes() == files["vocab.txt"]
    missing = r"--teacher_model http://127.0.0.1:\d+/absent/: .*no config.json in the model folder"
    with pytest.raises(SystemExit, match=missing):
        general.main(["--pregenerated_data", str(tmp_path / "data"), "--teacher_model", server.url + "/absent/",
                      "--spiking_student_model", str(tmp_path / "student"), "--output_dir", str(tmp_path / "o2")])
    assert not (tmp_path / "o2").exists()
