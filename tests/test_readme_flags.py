"""The README's flag tables (its "### Flags" section) state the distillation scripts' real defaults."""
import os
import re

import pytest

import spiking_bert_general_distill as general
import spiking_bert_task_distill as task

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
ROW = re.compile(r"^\| (`--[^|]*`) \| [^|]* \| ([^|]*) \|$")


def literal_defaults():
    """(flag, stated default) of every row of the Flags section's tables whose default is a plain value (a
    number, on or off). Other sections document other scripts."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("\n### Flags\n"):]
    section = section[:section.index("\n## ")]
    rows = []
    for line in section.splitlines():
        match = ROW.match(line.strip())
        if not match:
            continue
        stated = match.group(2).strip()
        if not re.fullmatch(r"on|off|-?[0-9.]+(e-?[0-9]+)?", stated):
            continue
        for flag in re.findall(r"`(--[a-z_0-9]+)", match.group(1)):
            rows.append((flag, stated))
    return rows


def test_the_readme_states_enough_plain_defaults_to_check():
    flags = {flag for flag, _ in literal_defaults()}
    assert {"--adaptive_patience", "--adaptive_check_every", "--max_seq_length", "--num_train_epochs",
            "--keep_checkpoints", "--bf16"} <= flags


@pytest.mark.parametrize("flag,stated", literal_defaults())
def test_each_stated_default_is_the_scripts_default(flag, stated):
    found = False
    for script in (task, general):
        action = script.build_parser()._option_string_actions.get(flag)
        if action is None:
            continue
        found = True
        default = action.default
        if stated == "off":
            assert default in (False, None), (script.__name__, flag, default)
        elif stated == "on":
            assert default is True, (script.__name__, flag, default)
        else:
            assert default == pytest.approx(float(stated)), (script.__name__, flag, default, stated)
    assert found, f"README names {flag}, which neither distillation script has"
