"""Two CPU processes under torchrun (gloo) train exactly like one process with the same global batch."""
import os
import subprocess
import sys

import spiking_bert_general_distill as general
from distill_fixtures import load_state, make_student_config, make_teacher, max_abs_difference, write_pregenerated

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_torchrun_two_processes_match_one_process(tmp_path):
    teacher = make_teacher(str(tmp_path / "models" / "teacher"))
    # Dropout off: each rank draws its own dropout masks, one process draws them for the whole batch.
    student = make_student_config(str(tmp_path / "student"), layers=2, dropout=0.0)
    # 7 examples in batches of 6, each in 2 micro-batches: micro-batches of 3 rows split 2 + 1 over the ranks
    # (unequal shards), the last batch of 1 row leaves rank 1 without rows (weight 0).
    data = write_pregenerated(str(tmp_path / "data"), epochs=1, examples=7)
    common = ["--pregenerated_data", data, "--teacher_model", teacher, "--spiking_student_model", student,
              "--train_batch_size", "6", "--max_seq_length", "32", "--learning_rate", "5e-3",
              "--num_train_epochs", "2", "--eval_step", "2", "--gradient_accumulation_steps", "2", "--no_cuda"]

    single = tmp_path / "single"
    general.main(common + ["--output_dir", str(single)])

    ddp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         os.path.join(REPO, "spiking_bert_general_distill.py"), *common, "--output_dir", str(ddp)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]

    assert max_abs_difference(load_state(str(ddp)), load_state(str(single))) < 1e-5
    log = (ddp / "log.txt").read_text()
    assert "rank 0 of 2" in log and "rank 1" not in log  # only rank 0 writes
    assert sorted(os.listdir(ddp)) == sorted(os.listdir(single))
