"""quickstart.py --smoke end to end: results, reuse of finished stages, refusal of mixed settings."""
import copy
import json
import os
import shutil
import subprocess
import sys

import pytest

from distill_fixtures import FAKE_ASSETS, preset_stages
from pipeline.presets import PRESETS, STUDENT_CONFIG_DIR, final_t_conv, with_augmentation
from pipeline.stages import (DISTILL_DATA, EVAL_STAGE, MARKER_NAME, SHARED_STAGES, build_stages,
                             copy_evaluation, first_difference, plan, seeded, shared_folders, stage_settings,
                             write_data_slices, write_json_atomic)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_quickstart(*args):
    return subprocess.run([sys.executable, "quickstart.py", *args], cwd=REPO, capture_output=True, text=True,
                          check=False)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("quickstart") / "run")
    result = run_quickstart("--smoke", "--run_dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield run_dir, result.stdout
    shutil.rmtree(run_dir, ignore_errors=True)  # about 1 GB of checkpoints


def test_smoke_run_writes_results_and_stage_folders(smoke_run):
    run_dir, stdout = smoke_run
    preset = PRESETS["smoke"]
    with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    assert results["preset"] == "smoke" and results["dev_examples"] == preset["data"]["dev_sentences"]
    assert results["test_examples"] == preset["data"]["test_sentences"]
    evaluations = results["student"]["evaluations"]
    assert [e["t_conv"] for e in evaluations] == preset["eval_t_conv"]
    assert sum(e["trained_at"] for e in evaluations) == 1
    accuracies = [results[model][f"{split}_acc"] for model in ("teacher", "majority_baseline") for split in ("dev", "test")]
    accuracies += [e[f"{split}_acc"] for e in evaluations for split in ("dev", "test")]
    assert all(0 <= acc <= 1 for acc in accuracies)
    # Rates are multiples of 1/T per neuron; their mean over populations lies in [0, 1].
    assert all(0 <= e["mean_spike_rate"] <= 1 for e in evaluations)
    # Energy per sentence grows with the steps; every evaluation is compared with the teacher.
    energies = [e["energy_uj"] for e in evaluations]
    assert energies == sorted(energies) and all(e["energy_ratio_to_teacher"] > 0 for e in evaluations)
    assert [e["mean_steps"] for e in evaluations] == preset["eval_t_conv"]
    adaptive = results["student"]["adaptive"]
    assert adaptive["t_conv"] == final_t_conv(preset) and adaptive["mean_steps"] <= adaptive["t_conv"]
    assert "predicted class has not changed" in adaptive["rule"]
    assert results["teacher"]["energy_uj"] > results["same_size_ann"]["energy_uj"] > 0
    with open(os.path.join(run_dir, "tradeoff.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # Each training stage drew its log (curves.png beside log.txt); the run folder gathers them.
    assert sorted(os.listdir(os.path.join(run_dir, "curves"))) == [
        f"{name}.png" for name in ("general_kd", "pred_kd", "task_ikd", "teacher")]
    for name in ("teacher", "general_kd", "task_ikd", "pred_kd"):
        with open(os.path.join(run_dir, name, "curves.png"), "rb") as f, \
                open(os.path.join(run_dir, "curves", f"{name}.png"), "rb") as copy:
            assert f.read() == copy.read()
    with open(os.path.join(run_dir, EVAL_STAGE, "energy.json"), encoding="utf-8") as f:
        assert json.load(f)["header"]["adaptive_t_conv"] == "on"
    # The fixed evaluations but prediction KD's own are readouts of the eval stage's one simulation.
    for t_conv in preset["eval_t_conv"]:
        if t_conv != final_t_conv(preset):
            with open(os.path.join(run_dir, EVAL_STAGE, f"t{t_conv}", "energy.json"), encoding="utf-8") as f:
                header = json.load(f)["header"]
            assert header["t_conv"] == t_conv and header["adaptive_t_conv"] == "off"
    assert results["student"]["parameters"] < results["teacher"]["parameters"]
    # Stage times summed, and the run's wall clock, which covers them (one job: no stages side by side).
    assert sum(timing["seconds"] for timing in results["stages"].values()) <= results["wall_seconds"] + 1

    labels = {split: [line.rstrip("\n").split("\t")[1] for line in read_lines(os.path.join(run_dir, "data", "movie",
                                                                                          f"{split}.tsv"))[1:]]
              for split in ("dev", "test")}
    majority = results["majority_baseline"]["label"]
    assert labels["dev"].count(majority) >= len(labels["dev"]) / 2
    for split in ("dev", "test"):
        assert results["majority_baseline"][f"{split}_acc"] == pytest.approx(labels[split].count(majority)
                                                                             / len(labels[split]))

    for name in ["data", "teacher", "corpus", "general_kd", "task_ikd", "pred_kd", f"eval_t{final_t_conv(preset)}",
                 EVAL_STAGE]:
        assert os.path.isfile(os.path.join(run_dir, name, MARKER_NAME)), name
        assert not results["stages"][name]["reused"]
    for name in ["teacher", "general_kd", "task_ikd", "pred_kd"]:
        assert os.path.isfile(os.path.join(run_dir, name, "model.safetensors")), name
    assert os.path.isfile(os.path.join(run_dir, "logs", "teacher.txt"))
    with open(os.path.join(run_dir, "results.md"), encoding="utf-8") as f:
        table = f.read()
    assert "majority class" in table and "t_conv 4 (training value)" in table and "| test accuracy |" in table
    assert "energy per sentence (uJ)" in table and "adaptive, at most t_conv 4" in table
    assert f"| the whole run, wall clock | {results['wall_seconds']:.0f} |" in table
    assert table.strip() in stdout
    # Each stage's command is logged before it runs.
    commands = [line for line in stdout.splitlines() if "quickstart: [pred_kd] " in line]
    assert commands and "spiking_bert_task_distill.py" in commands[0] and " --pred_distill " in commands[0]


def test_evaluation_at_the_training_t_conv_copies_what_do_eval_writes(smoke_run, tmp_path):
    run_dir, stdout = smoke_run
    preset = PRESETS["smoke"]
    t_conv = final_t_conv(preset)
    copied = os.path.join(run_dir, f"eval_t{t_conv}")
    assert f"[eval_t{t_conv}] writing" in stdout
    assert not os.path.exists(os.path.join(run_dir, "logs", f"eval_t{t_conv}.txt"))
    result = subprocess.run([
        sys.executable, "spiking_bert_task_distill.py", "--do_eval", "--spiking_student_model",
        os.path.join(run_dir, "pred_kd"), "--teacher_model", os.path.join(run_dir, "teacher"), "--data_dir",
        os.path.join(run_dir, "data", "movie"), "--task_name", "movie", "--output_dir", str(tmp_path / "eval"),
        "--t_conv", str(t_conv), "--eval_batch_size", str(preset["eval_batch_size"]), "--max_seq_length",
        str(preset["max_seq_length"]), "--do_lower_case"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    names = ["eval_results.txt", "energy.json", "movie_dev_predictions.tsv", "test_predictions.tsv"]
    assert sorted(os.listdir(copied)) == sorted(names + [MARKER_NAME])
    for name in names:
        with open(os.path.join(copied, name), "rb") as a, open(tmp_path / "eval" / name, "rb") as b:
            assert a.read() == b.read(), name


def test_rerun_reuses_stages_and_other_settings_are_refused(smoke_run):
    run_dir, _ = smoke_run
    rerun = run_quickstart("--smoke", "--run_dir", run_dir)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "[pred_kd] reusing" in rerun.stdout and "[teacher] reusing" in rerun.stdout
    with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
        assert all(stage["reused"] for stage in json.load(f)["stages"].values())

    marker = os.path.join(run_dir, "teacher", MARKER_NAME)
    before = os.path.getmtime(marker)
    refused = run_quickstart("--run_dir", run_dir)  # the default preset's settings
    assert refused.returncode != 0
    assert "choose another --run_dir or pass --overwrite" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert os.path.getmtime(marker) == before


def test_refuses_a_foreign_non_empty_run_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = run_quickstart("--smoke", "--run_dir", str(tmp_path))
    assert result.returncode != 0 and "holds no quickstart_run.json" in result.stderr
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_first_difference_names_the_changed_setting():
    old = {"command": ["a.py", "--num_train_epochs", "1"], "inputs": {}}
    new = {"command": ["a.py", "--num_train_epochs", "2"], "inputs": {}}
    assert first_difference(old, new) == 'command[2]: "1" -> "2"'


def test_stages_chain_and_run_at_their_preset_t_conv():
    for preset in PRESETS.values():
        stages = preset_stages(preset)
        for seed in preset["seeds"]:
            student = preset.get("student_config", STUDENT_CONFIG_DIR)
            for name, flags in preset["distillation"]:
                stage = stages[seeded(name, seed, preset)]
                assert stage.flags["--t_conv"] == flags["t_conv"] and stage.flags["--seed"] == seed, name
                assert stage.flags["--spiking_student_model"] == student
                student = stage.folder
            assert final_t_conv(preset) in preset["eval_t_conv"]
            # prediction KD's own dev evaluation, copied
            copied = stages[seeded(f"eval_t{final_t_conv(preset)}", seed, preset)]
            assert copied.job is copy_evaluation and copied.job_settings == {"student": student}
            others = [t_conv for t_conv in preset["eval_t_conv"] if t_conv != final_t_conv(preset)]
            assert not [t_conv for t_conv in others if seeded(f"eval_t{t_conv}", seed, preset) in stages]
            evaluation = stages[seeded(EVAL_STAGE, seed, preset)].flags
            assert evaluation["--readout_steps"] == others and evaluation["--spiking_student_model"] == student
            if not preset.get("adaptive_eval", True):  # the ablation's variants
                assert "--adaptive_t_conv" not in evaluation and evaluation["--t_conv"] == max(others)
                continue
            assert evaluation["--adaptive_t_conv"] is True and evaluation["--t_conv"] == final_t_conv(preset)
    paper = {name: flags["t_conv"] for name, flags in PRESETS["paper"]["distillation"]}
    assert paper == {"general_kd": 8, "task_ikd": 8, "pred_kd": 32}
    # Two seeds: shared data, teacher and corpus, per-seed students in their own folders.
    two = {**PRESETS["paper"], "seeds": [42, 7]}
    stages = preset_stages(two)
    assert stages["pred_kd.seed7"].folder == "/tmp/run/seed7/pred_kd" and "teacher.seed7" not in stages
    assert stages["task_ikd.seed42"].flags["--teacher_model"] == stages["teacher"].folder


def test_augmentation_stage_feeds_task_ikd_only():
    preset = with_augmentation(PRESETS["paper"], "on")
    stages = preset_stages(preset)
    augment = stages["augment"]
    assert augment.script == "data_augmentation.py" and augment.flags["--output_dir"] == "/tmp/run/augment"
    assert augment.flags["--candidates"] == "embedding" and augment.inputs == ("data",)
    ikd, pred = stages["task_ikd"], stages["pred_kd"]
    assert ikd.flags["--data_dir"] == "/tmp/run/augment" and ikd.flags["--aug_train"] is True
    assert "augment" in ikd.inputs
    assert pred.flags["--data_dir"] == "/tmp/run/data/movie" and "--aug_train" not in pred.flags
    # Prediction KD on the augmented sentences too (the README's next lever): the augmentation folder holds a
    # copy of the dev set (data_augmentation.py --output_dir), so it is the stage's whole --data_dir.
    both = copy.deepcopy(preset)
    both["distillation"][-1][1]["aug_train"] = True
    pred = preset_stages(both)["pred_kd"]
    assert pred.flags["--data_dir"] == "/tmp/run/augment" and pred.flags["--aug_train"] is True
    assert "augment" in pred.inputs
    off = set(preset_stages(with_augmentation(preset, "off")))
    assert "augment" not in off
    # Without general KD there is no corpus to pregenerate.
    no_general = {**PRESETS["paper"], "distillation": PRESETS["paper"]["distillation"][1:]}
    assert "corpus" not in set(preset_stages(no_general))


def write_movie_files(folder, train_rows, dev_rows, test_rows=5):
    os.makedirs(folder)
    for split, count in (("train", train_rows), ("dev", dev_rows), ("test", test_rows)):
        with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n" + "".join(f"{split} sentence {i}\t{i % 2}\n" for i in range(count)))


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.readlines()


@pytest.mark.parametrize("distill_sentences", [60, 25, None])
def test_distill_sentences_add_to_the_teachers_and_leave_them_unchanged(tmp_path, distill_sentences):
    movie = str(tmp_path / "movie_sst2")
    write_movie_files(movie, train_rows=100, dev_rows=7)
    slices = {"movie_sst2": movie, "wiki_corpus": None, "seed": 3, "train_sentences": 40, "dev_sentences": None,
              "test_sentences": None, "corpus_sentences": 0}
    write_data_slices(str(tmp_path / "plain"), **slices)
    write_data_slices(str(tmp_path / "split"), **slices, distill_sentences=distill_sentences)
    teacher = read_lines(tmp_path / "plain" / "movie" / "train.tsv")
    # The teacher's rows (and so the teacher) are those of a preset without the key.
    assert read_lines(tmp_path / "split" / "movie" / "train.tsv") == teacher and len(teacher) == 41
    student_folder = tmp_path / "split" / DISTILL_DATA / "movie"
    if distill_sentences is None:
        assert not student_folder.exists()
        return
    student = read_lines(student_folder / "train.tsv")
    assert student[0] == teacher[0] and len(student) == distill_sentences + 1 and len(set(student)) == len(student)
    smaller, larger = sorted((set(teacher[1:]), set(student[1:])), key=len)
    assert smaller <= larger
    source_order = read_lines(os.path.join(movie, "train.tsv"))
    assert student == sorted(student, key=source_order.index)  # file order kept
    for split in ("dev", "test"):
        assert read_lines(student_folder / f"{split}.tsv") == read_lines(os.path.join(movie, f"{split}.tsv"))


def test_distillation_stages_train_on_the_distill_sentences():
    preset = copy.deepcopy(PRESETS["paper"])
    preset["data"]["distill_sentences"] = 8000
    stages = preset_stages(preset)
    assert stages["data"].job_settings["distill_sentences"] == 8000
    assert stages["teacher"].flags["--data_dir"] == "/tmp/run/data/movie"
    for name in ("task_ikd", "pred_kd"):
        assert stages[name].flags["--data_dir"] == f"/tmp/run/data/{DISTILL_DATA}/movie", name
    assert stages[EVAL_STAGE].flags["--data_dir"] == "/tmp/run/data/movie"
    augmented = preset_stages(with_augmentation(preset, "on"))
    assert augmented["augment"].flags["--glue_dir"] == f"/tmp/run/data/{DISTILL_DATA}"
    assert augmented["task_ikd"].flags["--data_dir"] == "/tmp/run/augment"


def test_list_valued_flags_become_one_flag_with_several_values():
    preset = copy.deepcopy(PRESETS["smoke"])
    preset["spiking"] = {**preset["spiking"], "kd_losses": ["hidden_mse", "minilm"]}
    argv = preset_stages(preset)["task_ikd"].command()
    position = argv.index("--kd_losses")
    assert argv[position + 1:position + 3] == ["hidden_mse", "minilm"]


def test_presets_with_one_teacher_share_its_stages_and_others_are_refused(tmp_path):
    shared = shared_folders(str(tmp_path / "shared"))

    def stages_of(preset_name):
        stages = build_stages(PRESETS[preset_name], str(tmp_path / preset_name), FAKE_ASSETS, shared)
        return stages, stage_settings(stages)

    default_stages, default_settings = stages_of("default")
    for stage in default_stages:
        inside = os.path.dirname(stage.folder) == str(tmp_path / "shared")
        assert inside == (stage.name in SHARED_STAGES), stage.name
    # What the default's run wrote into the shared folder, as run_stage marks it.
    for name in ("data", "teacher", "augment"):
        os.makedirs(shared[name])
        write_json_atomic(os.path.join(shared[name], MARKER_NAME), {"settings": default_settings[name]})
    for preset_name in ("binary", "ternary", "energy", "ternary_energy", "deep", "frugal", "eight_steps",
                        "wide_band", "learned_band"):
        stages, settings = stages_of(preset_name)
        to_run = plan(stages, settings, overwrite=False)
        assert not {"data", "teacher", "augment"} & set(to_run) and "task_ikd.seed42" in to_run, preset_name
    # A preset with other data slices or another teacher is refused the shared folder, naming it.
    stages, settings = stages_of("smoke")
    with pytest.raises(SystemExit, match=r"shared/data was made with other settings \(job\.corpus_sentences"):
        plan(stages, settings, overwrite=False)


def test_shared_dir_naming_a_file_is_one_line_error(tmp_path):
    (tmp_path / "shared").write_text("mine\n")
    result = run_quickstart("--smoke", "--run_dir", str(tmp_path / "run"), "--shared_dir", str(tmp_path / "shared"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"error: --shared_dir {tmp_path / 'shared'} exists and is not a folder"]
    assert (tmp_path / "shared").read_text() == "mine\n" and not (tmp_path / "run").exists()
