"""Write docs/flags.md from the entry scripts' own argparse parsers.

    python tools/flags_doc.py            # rewrite docs/flags.md
    python tools/flags_doc.py --check    # exit 1, with one line, when docs/flags.md is stale

Each script is imported and its parser taken from its parser builder: ``build_parser()``, or
``parse_args(argv)``, which builds the parser and parses (the parser is caught as it starts to parse, so
nothing runs). Scripts whose parser is built inside ``main()`` have no such builder and are listed as left out.
"""
import argparse
import importlib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "flags.md")
ENVIRONMENT = ("SPIKINGBERT_ASSETS", "SPIKINGBERT_CACHE")
SCRIPTS = ("quickstart.py", "spiking_bert_general_distill.py", "spiking_bert_task_distill.py", "finetune_teacher.py",
           "preprocess_training_data.py", "data_augmentation.py", "predict.py", "download_glue_data.py",
           "prepare_assets.py")


class _Caught(Exception):
    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def parser_of(module):
    """The module's ArgumentParser, or None when it has no parser builder."""
    if hasattr(module, "build_parser"):
        return module.build_parser()
    if not hasattr(module, "parse_args"):
        return None
    original = argparse.ArgumentParser.parse_args

    def catch(self, *args, **kwargs):
        raise _Caught(self)

    argparse.ArgumentParser.parse_args = catch
    try:
        module.parse_args([])
    except _Caught as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args = original
    raise RuntimeError(f"{module.__name__}.parse_args() built no parser")


def cell(text):
    """One table cell: one line, pipes escaped, the home folder written ~ (the text must not depend on who
    generates it)."""
    text = " ".join(str(text).split()).replace(os.path.expanduser("~") + "/", "~/")
    return text.replace("|", "\\|")


def default_of(action):
    if action.required:
        return "required"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "off" if action.default in (False, None) else "on"
    if isinstance(action, argparse._StoreConstAction):
        return ""
    if isinstance(action, argparse.BooleanOptionalAction):
        return "on" if action.default else "off"
    if action.default is None:
        return ""
    if action.default is False or action.default is True:
        return "on" if action.default else "off"
    if isinstance(action.default, (list, tuple)):
        return "`" + " ".join(str(v) for v in action.default) + "`"
    return f"`{action.default}`"


def flag_of(action):
    names = ", ".join(action.option_strings)
    if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):
        return f"`{names}`"
    if action.choices is not None and action.metavar is None:
        value = "{" + ",".join(str(choice) for choice in action.choices) + "}"
    else:
        value = action.metavar or action.dest.upper()
    if action.nargs in ("+", "*"):
        value += " ..."
    elif action.nargs == "?":
        value = f"[{value}]"
    return f"`{names} {value}`"


def script_section(script, parser):
    lines = [f"## {script}", "", cell(parser.description.strip().splitlines()[0]) if parser.description else "", ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings and a.help != argparse.SUPPRESS
                   and not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        if group.title not in ("options", "optional arguments"):
            lines += [f"{group.title[0].upper()}{group.title[1:]}:", ""]
        lines += ["| flag | default | meaning |", "|---|---|---|"]
        for action in actions:
            lines.append(f"| {flag_of(action)} | {default_of(action)} | {cell(action.help or '')} |")
        lines.append("")
    positionals = [a for a in parser._actions if not a.option_strings]
    if positionals:
        lines += ["Positional: " + ", ".join(f"`{a.dest}`" for a in positionals), ""]
    return lines


def render():
    """The text of docs/flags.md. Help texts that name a default folder read ENVIRONMENT: they are rendered
    with those variables unset (the defaults, not this shell's), then the variables are restored."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    saved = {variable: os.environ.pop(variable) for variable in ENVIRONMENT if variable in os.environ}
    try:
        return render_sections()
    finally:
        os.environ.update(saved)


def render_sections():
    sections, left_out = [], []
    for script in SCRIPTS:
        module = importlib.import_module(script[:-len(".py")])
        parser = parser_of(module)
        if parser is None:
            left_out.append(script)
        else:
            sections.append((script, parser))
    lines = ["# Flags of the entry scripts", "",
             "Generated from the scripts' argparse parsers by `python tools/flags_doc.py`; do not edit by hand "
             "(`python tools/flags_doc.py --check` says when it is stale, and the test suite fails then). Each "
             "flag's meaning is its `--help` text; [scripts.md](scripts.md) explains the modes, model folders "
             "and student settings behind them.", "", "## Contents", ""]
    lines += [f"- [{script}](#{script.replace('.', '')})" for script, _ in sections]
    if left_out:
        lines += ["", "Not listed: " + ", ".join(f"`{script}`" for script in left_out) + " (their parser is built "
                  "inside `main()`; `python SCRIPT --help` prints their flags)."]
    lines.append("")
    for script, parser in sections:
        lines += script_section(script, parser)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/flags.md differs from the parsers")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        try:
            with open(DOC, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print("docs/flags.md is stale: run python tools/flags_doc.py")
            return 1
        return 0
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(DOC, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
