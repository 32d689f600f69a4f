"""Pilot pipelines for issue 12: python pilot.py NAME STAGE_SPEC_JSON (stages: list of [name, script, flags])."""
import json, os, subprocess, sys, time
REPO = "/work/main"
PY = "/work/main/.venv/bin/python"
BASE = "/work/exp/base"
ASSETS = os.path.expanduser("~/.cache/spikingbert/assets")

def run(name, stages, evals, threads=1, seed=42):
    out = f"/work/exp/{name}"
    os.makedirs(out, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    prev = None
    timings = {}
    for stage, flags in stages:
        folder = f"{out}/{stage}"
        if os.path.exists(f"{folder}/model.safetensors") and os.path.exists(f"{folder}/.done"):
            prev = folder; continue
        if stage.startswith("general"):
            argv = [PY, "spiking_bert_general_distill.py", "--pregenerated_data", f"{BASE}/corpus", "--teacher_model",
                    f"{ASSETS}/teacher_minilm", "--max_seq_length", "32"]
        else:
            argv = [PY, "spiking_bert_task_distill.py", "--teacher_model", f"{BASE}/teacher", "--data_dir",
                    f"{BASE}/data/movie", "--task_name", "movie", "--max_seq_length", "64", "--eval_batch_size", "64"]
        student = flags.pop("student", prev or "spiking_student_model/minilm")
        argv += ["--spiking_student_model", student, "--output_dir", folder, "--do_lower_case", "--seed", str(seed),
                 "--keep_checkpoints", "1", "--overwrite"]
        for k, v in flags.items():
            argv += [f"--{k}"] if v is True else [f"--{k}"] + (v if isinstance(v, list) else [str(v)])
        t = time.time()
        with open(f"{out}/{stage}.log", "w") as log:
            log.write(" ".join(argv) + "\n"); log.flush()
            rc = subprocess.run(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        timings[stage] = round(time.time() - t)
        if rc:
            print(name, stage, "failed"); sys.exit(1)
        open(f"{folder}/.done", "w").close()
        prev = folder
    results = {}
    for t_conv, extra in evals:
        folder = f"{out}/eval_t{t_conv}{extra.get('tag','')}"
        argv = [PY, "spiking_bert_task_distill.py", "--do_eval", "--spiking_student_model", prev, "--data_dir",
                f"{BASE}/data/movie", "--task_name", "movie", "--output_dir", folder, "--t_conv", str(t_conv),
                "--max_seq_length", "64", "--eval_batch_size", "64", "--do_lower_case", "--overwrite"]
        for k, v in extra.items():
            if k != "tag": argv += [f"--{k}", str(v)]
        t = time.time()
        with open(f"{folder}.log", "w") as log:
            subprocess.run(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        vals = dict(l.strip().split(" = ") for l in open(f"{folder}/eval_results.txt") if " = " in l)
        results[f"t{t_conv}{extra.get('tag','')}"] = (round(float(vals["movie.acc"]), 4),
                                                      round(float(vals["movie.rate.mean_over_populations"]), 4))
        timings[f"eval_t{t_conv}"] = round(time.time() - t)
    line = json.dumps({"name": name, "results": results, "timings": timings})
    print(line)
    with open("/work/exp/results.jsonl", "a") as f:
        f.write(line + "\n")

if __name__ == "__main__":
    spec = json.loads(open(sys.argv[2]).read())
    run(sys.argv[1], spec["stages"], spec["evals"], spec.get("threads", 1), spec.get("seed", 42))
