"""The documentation holds together: every relative link of README.md, docs/*.md and the logs' index resolves
(files exist; a `file.md#anchor` link names a heading of that file, by GitHub's slug rules), the README stays
a front door (at most 260 lines), and the documentation speaks of the project and its runs, not of the
work items or sessions that made them."""
import glob
import json
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = sorted(["README.md", "logs/README.md", "logs/development/runs.md"]
                   + [os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, "docs", "*.md"))])
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+(?:\([^()]*\))?[^()\s]*)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def read(relative):
    with open(os.path.join(REPO, relative), encoding="utf-8") as f:
        return f.read()


def slug(heading):
    """GitHub's anchor for a heading: link text kept, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(relative):
    """Every anchor of a markdown file's headings (the n-th repeat of a slug gets -n)."""
    seen, result = {}, set()
    fenced = False
    for line in read(relative).splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if fenced or not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def test_slugs_follow_githubs_rules():
    assert slug("The paper's three steps with BERT-base and GLUE") == "the-papers-three-steps-with-bert-base-and-glue"
    assert slug("## quickstart.py".lstrip("# ")) == "quickstartpy"
    assert slug("The offline substitute: `--candidates embedding`") == "the-offline-substitute---candidates-embedding"
    assert slug("Extra KD losses (`distill/losses.py`)") == "extra-kd-losses-distilllossespy"


def links(relative):
    """(line number, target) of every relative link of a markdown file, code blocks and spans left out."""
    text = read(relative)
    found, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        line = re.sub(r"`[^`]*`", "``", line)
        for match in LINK.finditer(line):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            found.append((number, target))
    return found


@pytest.mark.parametrize("relative", DOCUMENTS)
def test_every_relative_link_resolves(relative):
    problems = []
    folder = os.path.dirname(os.path.join(REPO, relative))
    for number, target in links(relative):
        path, _, anchor = target.partition("#")
        destination = os.path.normpath(os.path.join(folder, path)) if path else os.path.join(REPO, relative)
        if not os.path.exists(destination):
            problems.append(f"{relative}:{number}: {target}: no such file")
            continue
        if anchor:
            if not destination.endswith(".md"):
                problems.append(f"{relative}:{number}: {target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(os.path.relpath(destination, REPO)):
                problems.append(f"{relative}:{number}: {target}: no heading with that anchor")
    assert not problems, "\n".join(problems)


def test_the_documents_have_links_to_check():
    assert len(links("README.md")) >= 15
    assert {target.partition("#")[0] for _, target in links("README.md")} >= {
        "docs/quickstart.md", "docs/flags.md", "docs/few-time-steps.md", "docs/energy.md", "docs/speed.md",
        "docs/differences.md", "docs/reliability.md", "logs/README.md"}


def test_the_readme_is_at_most_260_lines():
    assert len(read("README.md").splitlines()) <= 260


def test_the_readme_starts_with_the_two_commands():
    lines = read("README.md").splitlines()
    assert lines[0] == "```bash"
    assert lines[1].startswith("./quickstart.sh ") and lines[2].startswith("./run_tests.sh ")
    assert lines[3] == "```"


def test_the_headline_table_is_the_logged_four_seed_run():
    """Each student row of the README's Results table states the logged run's test and dev means (in %)."""
    text = read("README.md")
    section = text[text.index("\n## Results\n"):]
    section = section[:section.index("\n## ", 1)]
    assert section.split("\n\n")[1].startswith("All figures are on 1,057 held-out test sentences")
    assert "\n### Compared with published spiking language models\n" in section
    with open(os.path.join(REPO, "logs", "quickstart-default", "four_seeds", "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    student = results["student"]
    rows = [(f"| spiking student, {e['t_conv']} step{'' if e['t_conv'] == 1 else 's'}", e)
            for e in student["evaluations"]]
    rows.append((f"| spiking student, adaptive (at most {student['adaptive']['t_conv']})", student["adaptive"]))
    for start, evaluation in rows:
        (line,) = [line for line in section.splitlines() if line.startswith(start)]
        cells = [cell.strip() for cell in line.split("|")]
        for cell, key in ((cells[2], "test_acc"), (cells[3], "dev_acc")):
            low, high = evaluation[f"{key}_range"]
            assert cell == f"{100 * evaluation[key]:.1f} ({100 * low:.1f}-{100 * high:.1f})", (start, key, cell)
    teacher = [line for line in section.splitlines() if line.startswith("| teacher (ANN)")][0]
    assert f"| {100 * results['teacher']['test_acc']:.1f} | {100 * results['teacher']['dev_acc']:.1f} |" in teacher


@pytest.mark.parametrize("relative", [d for d in DOCUMENTS if d == "README.md" or d.startswith("docs/")])
def test_the_documentation_names_no_issues_or_sessions(relative):
    for number, line in enumerate(read(relative).splitlines(), 1):
        assert not re.search(r"\bsessions?\b|\bissues? *#?\d+", line, re.I), f"{relative}:{number}: {line}"


def test_long_docs_have_a_table_of_contents():
    for relative in DOCUMENTS:
        if not relative.startswith("docs/") or relative == "docs/reliability.md":
            continue
        text = read(relative)
        if len(text.splitlines()) > 80:
            assert "\n## Contents\n" in text, f"{relative} is long and has no table of contents"
