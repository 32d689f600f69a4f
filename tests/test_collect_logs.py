"""tools/collect_logs.py (what a run folder leaves in logs/) and logs/development/rerun.py (the development
runs' commands, rebuilt from their parameters)."""
import ast
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVELOPMENT = os.path.join(REPO, "logs", "development")
sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, DEVELOPMENT)

import rerun  # noqa: E402
from collect_logs import collapse_redraws, collect, read_bundle  # noqa: E402


def test_collapse_redraws_keeps_the_last_state_of_each_line():
    assert collapse_redraws("a\rb 10%\rb 100%\nplain\r\nend") == "b 100%\nplain\nend"
    # A redrawn line that ends in a carriage return keeps its last state, not the empty tail.
    assert collapse_redraws("x 5%\ry 9%\r\n") == "y 9%\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def marker(command, finished, seconds=1.0):
    return json.dumps({"settings": {"command": command, "inputs": {}}, "seconds": seconds, "finished": finished})


def make_run(run):
    """A small quick-start run folder: a teacher, one seed's two stages and two evaluations (one a copy)."""
    write(str(run / "teacher" / "log.txt"), "teacher trained\n")
    write(str(run / "teacher" / "eval_results.txt"), "movie.acc = 0.8\n")
    write(str(run / "teacher" / "stage_done.json"), marker(["finetune_teacher.py", "--seed", "42"], "2026-01-01 10:00:00"))
    write(str(run / "teacher" / "model.safetensors"), "weights")
    write(str(run / "augment" / "train_aug.tsv"), "sentence\t1\n")
    write(str(run / "augment" / "stage_done.json"), marker(["data_augmentation.py", "--N", "3"], "2026-01-01 10:01:00"))
    seed = run / "seed42"
    write(str(seed / "pred_kd" / "log.txt"), "step 1 loss 0.5\n")
    write(str(seed / "pred_kd" / "eval_results.txt"), "movie.acc = 0.79\n")
    write(str(seed / "pred_kd" / "energy.json"), "{}")
    write(str(seed / "pred_kd" / "config.json"), "{}")
    write(str(seed / "pred_kd" / "movie_dev_predictions.tsv"), "index\tprediction\n")
    write(str(seed / "pred_kd" / "checkpoint-step5" / "log.txt"), "old")
    write(str(seed / "pred_kd" / "stage_done.json"),
          marker(["spiking_bert_task_distill.py", "--pred_distill", "--output_dir", "a b"], "2026-01-01 10:03:00", 60.0))
    write(str(seed / "task_ikd" / "log.txt"), "ikd\n")
    write(str(seed / "task_ikd" / "stage_done.json"), marker(["spiking_bert_task_distill.py"], "2026-01-01 10:02:00"))
    write(str(seed / "eval_t32" / "eval_results.txt"), "movie.acc = 0.79\n")
    write(str(seed / "eval_t32" / "stage_done.json"),
          json.dumps({"settings": {"job": {"student": "x"}}, "seconds": 0.0, "finished": "2026-01-01 10:04:00"}))
    write(str(run / "results.md"), "| table |\n")
    write(str(run / "tradeoff.png"), "png")
    write(str(run / "logs" / "quickstart.txt"), "10:00 quickstart: [teacher] python finetune_teacher.py\n")
    write(str(run / "logs" / "augment.txt"), "$ python data_augmentation.py\naugmenting 50%\raugmenting 100%\n15 rows\n")
    write(str(run / "logs" / "pred_kd.seed42.txt"), "$ python x\nstep 1\rstep 2\nstep 1 loss 0.5\n")


def test_collect_keeps_the_tables_and_bundles_logs_commands_and_evaluations(tmp_path):
    make_run(tmp_path / "run")
    destination = tmp_path / "logs"
    assert collect(str(tmp_path / "run"), str(destination)) == 5
    assert sorted(os.listdir(destination)) == ["commands.txt", "eval_results.txt", "logs.txt", "results.md",
                                               "tradeoff.png"]
    logs = read_bundle(str(destination / "logs.txt"))
    # The driver's console first; a stage's console output only where the stage writes no log of its own.
    assert list(logs) == ["logs/quickstart.txt", "teacher/log.txt", "logs/augment.txt", "seed42/task_ikd/log.txt",
                          "seed42/pred_kd/log.txt"]
    assert logs["logs/augment.txt"] == "$ python data_augmentation.py\naugmenting 100%\n15 rows\n"
    assert logs["seed42/pred_kd/log.txt"] == "step 1 loss 0.5\n"
    evaluations = read_bundle(str(destination / "eval_results.txt"))
    assert evaluations == {"teacher/eval_results.txt": "movie.acc = 0.8\n",
                           "seed42/pred_kd/eval_results.txt": "movie.acc = 0.79\n",
                           "seed42/eval_t32/eval_results.txt": "(identical to seed42/pred_kd/eval_results.txt)\n"}
    commands = (destination / "commands.txt").read_text()
    assert "# seed42/pred_kd: finished 2026-01-01 10:03:00, 60.0 s\n" in commands
    assert "python spiking_bert_task_distill.py --pred_distill --output_dir 'a b'\n" in commands
    assert '# not a script: {"student": "x"}' in commands
    assert commands.index("# teacher") < commands.index("# augment") < commands.index("# seed42/task_ikd")


def test_a_folder_collected_in_the_older_layout_is_read_the_same_way(tmp_path):
    """console/ in place of logs/ (logs/ folders collected before the bundles), also one level down."""
    run = tmp_path / "run"
    write(str(run / "shared" / "teacher" / "log.txt"), "teacher\n")
    write(str(run / "console" / "teacher.txt"), "$ python finetune_teacher.py\nteacher\n")
    write(str(run / "variant" / "console" / "teacher.txt"), "$ python finetune_teacher.py\nrebuilt teacher\n")
    collect(str(run), str(tmp_path / "logs"))
    logs = read_bundle(str(tmp_path / "logs" / "logs.txt"))
    # The root console's teacher is shared/teacher's log; the variant's rebuilt teacher has no log of its own.
    assert list(logs) == ["variant/console/teacher.txt", "shared/teacher/log.txt"]


def test_an_existing_destination_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "logs").mkdir()
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "collect_logs.py"), str(tmp_path / "run"),
                             str(tmp_path / "logs")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "exists" in result.stderr


def test_logged_run_folders_are_in_the_collected_layout():
    """Every run folder under logs/ holds only what collect_logs keeps (plus commands and patches kept by hand)."""
    allowed = {"results.md", "results.json", "tradeoff.png", "ablation.md", "ablation.json", "commands.txt",
               "logs.txt", "eval_results.txt", "preset.diff"}
    logs = os.path.join(REPO, "logs")
    for folder, _, files in os.walk(logs):
        relative = os.path.relpath(folder, logs)
        if relative in (".", "development", "benchmarks"):
            continue
        if os.path.basename(folder) == "curves":  # each stage's curves.png, named by stage
            assert files and all(name.endswith(".png") for name in files), relative
            continue
        assert set(files) <= allowed, (relative, sorted(set(files) - allowed))
        for name in ("logs.txt", "eval_results.txt"):
            if name in files:
                assert read_bundle(os.path.join(folder, name)), (relative, name)


# --- logs/development/rerun.py ---

def logged_args(log_text):
    """The flags a distillation script logged on its first line (`... on movie: {...}`)."""
    for line in log_text.splitlines():
        if ": {'" in line:
            return ast.literal_eval(line[line.index(": {'") + 2:])
    return None


def test_rerun_dry_run_prints_a_rows_commands():
    result = subprocess.run([sys.executable, os.path.join(DEVELOPMENT, "rerun.py"), "lr2", "--dry-run", "--python",
                             "python", "--base", "BASE", "--out", "OUT"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# lr2: ")
    assert "rerun from a checkout of c932981" in lines[1]
    commands = [line for line in lines if not line.startswith("#")]
    assert len(commands) == 6  # two seeds: prediction KD, evaluations at 8 and 16 steps
    assert commands[0].startswith("OMP_NUM_THREADS=1 python spiking_bert_task_distill.py --teacher_model BASE/teacher ")
    assert "--spiking_student_model OUT/split_1_2/seed42/task_ikd --output_dir OUT/lr2/seed42/pred_kd" in commands[0]
    assert "--learning_rate 0.0002" in commands[0] and "--rate_penalty 0.15" in commands[0]
    assert "--do_eval" in commands[1] and "--t_conv 8" in commands[1]


def test_every_row_of_the_table_has_parameters_and_logs():
    rows = rerun.load_rows()
    with open(os.path.join(DEVELOPMENT, "runs.md"), encoding="utf-8") as f:
        table = f.read()
    for name, row in rows.items():
        assert f"| `{name}` |" in table, name
        folder = os.path.join(DEVELOPMENT, name)
        assert os.path.isfile(os.path.join(folder, "logs.txt")), name
        assert rerun.Plan(row, "OUT", "BASE", "python", "ASSETS").build(), name


@pytest.mark.parametrize("name", [name for name, row in rerun.load_rows().items() if row["kind"] == "stages"])
def test_a_rows_commands_give_the_flags_its_logs_recorded(name):
    """Each rebuilt command, parsed by the script's own parser, has the values the logged run recorded (paths
    aside, and flags added to the scripts since)."""
    import spiking_bert_general_distill as general
    import spiking_bert_task_distill as task

    row = rerun.load_rows()[name]
    logs = read_bundle(os.path.join(DEVELOPMENT, name, "logs.txt"))
    paths = {"teacher_model", "data_dir", "spiking_student_model", "output_dir", "pregenerated_data"}
    default_changed = {"adaptive_patience", "overwrite"}  # defaults of their time that the rows leave unset
    checked = 0
    for _, argv, _ in rerun.Plan(row, "OUT", "BASE", "python", "ASSETS").build():
        if argv[0] not in (rerun.TASK_SCRIPT, "spiking_bert_general_distill.py"):
            continue
        key = os.path.relpath(argv[argv.index("--output_dir") + 1], f"OUT/{name}") + "/log.txt"
        if key not in logs:
            continue
        logged = logged_args(logs[key])
        parser = (task if argv[0] == rerun.TASK_SCRIPT else general).build_parser()
        ours = vars(parser.parse_args(argv[1:]))
        given = {arg[2:] for arg in argv if arg.startswith("--")}
        for flag, value in logged.items():
            if flag in paths or flag not in ours or (flag in default_changed and flag not in given):
                continue
            assert ours[flag] == value, (key, flag, value, ours[flag])
        checked += 1
    assert checked, name
