"""The flags as documented: docs/flags.md is what tools/flags_doc.py generates from the scripts' parsers (so
it cannot drift), the README's command lines of the paper's three steps parse with the scripts as they are,
and the prose that states flag defaults states the scripts' defaults."""
import os
import re
import shlex
import subprocess
import sys

import pytest

import finetune_teacher
import preprocess_training_data
import spiking_bert_general_distill as general
import spiking_bert_task_distill as task
from distill.adaptive import StoppingRule

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

import flags_doc  # noqa: E402


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def test_docs_flags_md_is_what_the_parsers_generate():
    with open(flags_doc.DOC, encoding="utf-8") as f:
        assert f.read() == flags_doc.render(), "docs/flags.md is stale: run python tools/flags_doc.py"


def test_the_check_mode_says_so_in_one_line_and_exits_1_when_stale(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "flags.md"
    stale.write_text("# old\n")
    monkeypatch.setattr(flags_doc, "DOC", str(stale))
    assert flags_doc.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "stale" in out
    assert flags_doc.main([]) == 0
    assert flags_doc.main(["--check"]) == 0


def test_the_check_mode_runs_from_the_command_line():
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "flags_doc.py"), "--check"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


PARSERS = {"spiking_bert_task_distill.py": task.build_parser, "spiking_bert_general_distill.py": general.build_parser,
           "finetune_teacher.py": None, "preprocess_training_data.py": None}


def readme_commands():
    """Each `python SCRIPT ...` command line of the README's bash blocks (continuations joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", read("README.md"), re.S)
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("#")[0].strip()
            if command.startswith("python ") and command.split()[1] in PARSERS:
                commands.append(command)
    return commands


def test_the_readme_shows_the_papers_commands():
    scripts = [command.split()[1] for command in readme_commands()]
    assert scripts.count("spiking_bert_task_distill.py") >= 3  # task IKD, prediction KD, evaluation
    assert {"spiking_bert_general_distill.py", "preprocess_training_data.py", "finetune_teacher.py"} <= set(scripts)


@pytest.mark.parametrize("command", readme_commands())
def test_each_readme_command_parses_with_the_script(command, monkeypatch):
    words = shlex.split(re.sub(r"\$\{(\w+)\}", r"\1", command))
    script, argv = words[1], words[2:]
    if PARSERS[script] is not None:
        PARSERS[script]().parse_args(argv)
    elif script == "finetune_teacher.py":
        finetune_teacher.parse_args(argv)
    else:
        preprocess_training_data.parse_args(argv)


def test_the_adaptive_rule_defaults_in_the_docs_are_the_flags_defaults():
    rule = StoppingRule()
    text = read("docs/speed.md")
    stated = re.search(r"Defaults: K = (\d+), P = (\d+), M = ([0-9.]+), S = (\d+)", text)
    assert stated, "docs/speed.md no longer states the adaptive rule's defaults"
    assert (int(stated.group(1)), int(stated.group(2)), float(stated.group(3)), int(stated.group(4))) == (
        rule.check_every, rule.patience, rule.margin, rule.min_steps)
    for flag, value in (("--adaptive_check_every", rule.check_every), ("--adaptive_patience", rule.patience),
                        ("--adaptive_margin", rule.margin), ("--adaptive_min_steps", rule.min_steps)):
        assert task.build_parser()._option_string_actions[flag].default == value


def test_the_prose_defaults_of_the_distillation_flags_are_the_scripts():
    """docs/scripts.md states a few defaults in words; they are the parsers'."""
    text = read("docs/scripts.md")
    for flag, default in re.findall(r"`(--[a-z_]+)` \(default ([^)]+)\)", text):
        found = False
        for build in (task.build_parser, general.build_parser):
            action = build()._option_string_actions.get(flag)
            if action is None:
                continue
            found = True
            assert str(action.default) == default, (flag, action.default, default)
        assert found, f"docs/scripts.md names {flag}, which neither distillation script has"


ROW = re.compile(r"^\| `(--[A-Za-z_]+)[^|]*\| [^|]* \| ([^|]*) \|$")


def stated_defaults(relative):
    """(flag, stated default) of the rows of a doc's flag tables (| flag | meaning | default |) whose default
    is a plain value (a number, on or off); a row naming several flags states the first one's."""
    rows = []
    for line in read(relative).splitlines():
        match = ROW.match(line.strip())
        if match and re.fullmatch(r"on|off|-?[0-9.,]+(e-?[0-9]+)?", match.group(2).strip().split(" ")[0]):
            rows.append((match.group(1), match.group(2).strip().split(" ")[0]))
    return rows


def parser_for(relative):
    import data_augmentation

    return flags_doc.parser_of(data_augmentation) if relative == "docs/augmentation.md" else task.build_parser()


@pytest.mark.parametrize("relative", ["docs/augmentation.md", "docs/scripts.md"])
def test_the_flag_tables_written_by_hand_state_the_scripts_defaults(relative):
    rows = stated_defaults(relative)
    assert len(rows) >= 5, relative
    parser = parser_for(relative)
    for flag, stated in rows:
        action = parser._option_string_actions.get(flag)
        assert action is not None, f"{relative} names {flag}, which the script does not have"
        if stated == "off":
            assert action.default in (False, None), (flag, action.default)
        elif stated == "on":
            assert action.default is True, (flag, action.default)
        else:
            assert action.default == pytest.approx(float(stated.replace(",", ""))), (flag, action.default, stated)

