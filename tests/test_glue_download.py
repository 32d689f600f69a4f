"""download_glue_data.py against a local HTTP server serving tiny archives in the GLUE layouts."""
import http.server
import io
import os
import stat
import sys
import threading
import zipfile

import pytest

import download_glue_data
from glue.download import ARCHIVE_TASKS, TASKS, task_urls

MSR_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
MSR_TRAIN = MSR_HEADER + "1\t11\t12\tA one.\tA 1.\n0\t21\t22\tB two.\tB 2.\n1\t31\t32\tC three.\tC 3.\n"
MSR_TEST = MSR_HEADER + "1\t41\t42\tD four.\tD 4.\n0\t51\t52\tE five.\tE 5.\n"
DEV_IDS = "21\t22\n"


def task_zip(folder, files, extra=()):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in files:
            zf.writestr(f"{folder}/{name}", f"contents of {folder}/{name}\n")
        for info, data in extra:
            zf.writestr(info, data)
    return buffer.getvalue()


def glue_files():
    files = {archive: task_zip(folder, required) for folder, archive, required in ARCHIVE_TASKS.values()}
    files.update({"msr_paraphrase_train.txt": MSR_TRAIN.encode(), "msr_paraphrase_test.txt": MSR_TEST.encode(),
                  "mrpc_dev_ids.tsv": DEV_IDS.encode(), "AX.tsv": b"index\tsentence1\tsentence2\n"})
    return files


@pytest.fixture
def server():
    """Serves ``state["files"]``; names in ``state["fail"]`` get a 500, in ``state["cut"]`` a truncated body."""
    state = {"files": glue_files(), "fail": set(), "cut": set(), "requests": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.rsplit("/", 1)[-1]
            state["requests"].append(name)
            if name not in state["files"] or name in state["fail"]:
                self.send_error(404 if name not in state["files"] else 500)
                return
            body = state["files"][name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2] if name in state["cut"] else body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/glue"
    yield state
    httpd.shutdown()
    httpd.server_close()


def run(data_dir, server, tasks="all", *extra):
    download_glue_data.main(["--data_dir", str(data_dir), "--tasks", tasks, "--url_base", server["url"], *extra])


def visible(data_dir):
    return sorted(d for d in os.listdir(data_dir) if not d.startswith("."))


def test_default_urls_are_the_standard_glue_ones():
    urls = task_urls()
    assert urls["CoLA.zip"] == "https://dl.fbaipublicfiles.com/glue/data/CoLA.zip"
    assert urls["msr_paraphrase_train.txt"].startswith("https://dl.fbaipublicfiles.com/senteval/")
    assert set(task_urls("http://x/y/").values()) == {f"http://x/y/{n}" for n in task_urls()}


def test_all_tasks_download_into_the_glue_layout(tmp_path, server):
    run(tmp_path, server)
    assert visible(tmp_path) == ["CoLA", "MNLI", "MRPC", "QNLI", "QQP", "RTE", "SST-2", "STS-B", "WNLI",
                                 "diagnostic"]
    for folder, _, required in ARCHIVE_TASKS.values():
        for name in required:
            assert (tmp_path / folder / name).read_text() == f"contents of {folder}/{name}\n"
    assert (tmp_path / "diagnostic" / "diagnostic.tsv").read_text() == "index\tsentence1\tsentence2\n"
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    assert (tmp_path / "MRPC" / "train.tsv").read_text() == (
        header + "1\t11\t12\tA one.\tA 1.\n1\t31\t32\tC three.\tC 3.\n")
    assert (tmp_path / "MRPC" / "dev.tsv").read_text() == header + "0\t21\t22\tB two.\tB 2.\n"
    assert (tmp_path / "MRPC" / "test.tsv").read_text() == (
        "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t41\t42\tD four.\tD 4.\n1\t51\t52\tE five.\tE 5.\n")


def test_mrpc_from_a_local_folder(tmp_path, server):
    local = tmp_path / "msr"
    local.mkdir()
    (local / "msr_paraphrase_train.txt").write_text(MSR_TRAIN, encoding="utf-8")
    (local / "msr_paraphrase_test.txt").write_text(MSR_TEST, encoding="utf-8")
    run(tmp_path / "glue", server, "mrpc", "--path_to_mrpc", str(local))
    assert server["requests"] == ["mrpc_dev_ids.tsv"]
    assert (tmp_path / "glue" / "MRPC" / "dev.tsv").read_text().endswith("0\t21\t22\tB two.\tB 2.\n")


def test_rerun_skips_complete_tasks(tmp_path, server, caplog):
    run(tmp_path, server, "CoLA,SST-2")
    server["requests"].clear()
    caplog.set_level("INFO")
    run(tmp_path, server, "CoLA,SST-2,RTE")
    assert server["requests"] == ["RTE.zip"]
    assert "CoLA: " in caplog.text and "is complete, skipping" in caplog.text


@pytest.mark.parametrize("mode", ["fail", "cut"])
def test_failed_download_leaves_no_task_folder(tmp_path, server, mode):
    server[mode].add("QQP-clean.zip")
    with pytest.raises(SystemExit) as error:
        run(tmp_path, server, "CoLA,QQP,RTE")
    message = str(error.value)
    assert message.startswith("error: QQP (") and server["url"] + "/QQP-clean.zip" in message
    assert os.listdir(tmp_path) == ["CoLA"]
    server[mode].clear()
    run(tmp_path, server, "CoLA,QQP,RTE")
    assert visible(tmp_path) == ["CoLA", "QQP", "RTE"]


def test_failed_mrpc_download_leaves_no_folder(tmp_path, server):
    server["fail"].add("mrpc_dev_ids.tsv")
    with pytest.raises(SystemExit, match="MRPC .*mrpc_dev_ids.tsv"):
        run(tmp_path, server, "MRPC")
    assert os.listdir(tmp_path) == []


def symlink_member():
    info = zipfile.ZipInfo("RTE/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member", ["../evil.txt", "RTE/../../evil.txt", "/tmp/evil.txt", "symlink"])
def test_unsafe_archive_is_refused(tmp_path, server, member):
    required = ARCHIVE_TASKS["RTE"][2]
    extra = [(symlink_member(), "/etc/passwd")] if member == "symlink" else [(member, "pwned")]
    server["files"]["RTE.zip"] = task_zip("RTE", required, extra)
    data_dir = tmp_path / "glue"
    with pytest.raises(SystemExit, match="RTE .*refused"):
        run(data_dir, server, "RTE")
    assert os.listdir(data_dir) == []
    assert not (tmp_path / "evil.txt").exists()


def test_unknown_task_is_one_line_error(tmp_path, server):
    with pytest.raises(SystemExit, match="unknown task 'SNLI'; known tasks: " + ", ".join(TASKS)):
        run(tmp_path, server, "CoLA,SNLI")


@pytest.mark.parametrize("args,message", [
    (["--source", "hf", "--url_base", "http://x"], "error: --url_base only applies to --source archive"),
    (["--source", "hf", "--path_to_mrpc", "m", "--url_base", "u"],
     "error: --path_to_mrpc, --url_base only applies to --source archive"),
    (["--hf_path", "glue"], "error: --hf_path only applies to --source hf"),
])
def test_source_flags_of_the_other_source_are_refused(tmp_path, args, message):
    with pytest.raises(SystemExit, match=f"^{message}$"):
        download_glue_data.main(["--data_dir", str(tmp_path), *args])
    assert os.listdir(tmp_path) == []


def test_hf_source_without_datasets_names_the_requirements_file(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes ``import datasets`` raise ImportError
    with pytest.raises(SystemExit, match=r"^error: --source hf needs the datasets package: "
                                         r"pip install -r requirements-hf\.txt$"):
        download_glue_data.main(["--data_dir", str(tmp_path / "glue"), "--source", "hf"])
    assert not (tmp_path / "glue").exists()
