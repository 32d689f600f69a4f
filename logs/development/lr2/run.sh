#!/usr/bin/env bash
# The default preset (commit d4064c4: task IKD 1 epoch, prediction KD 2 epochs) with prediction KD at learning
# rate 2e-4 instead of 1e-4, from the same task-IKD students (logs/development/split_1_2, bit-identical to the
# default's) and the logged default run's teacher and augmented data; then dev evaluation at 8 and 16 steps
# (32 is prediction KD's own). Seeds side by side, one thread each.
set -euo pipefail
R=/work/run_n3/runs/quickstart-default
I=/work/exp/alloc
E=/work/exp/lr2
PY=/work/run_n3/.venv/bin/python
SPK="--vth 1.0 --membrane_init 0.5 --surrogate grid --train_simulation off"
cd /work/run_n3
one() {
  s=$1
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir $R/augment --aug_train --task_name movie \
    --spiking_student_model $I/seed$s/task_ikd --output_dir $E/seed$s/pred_kd $SPK --pred_distill --t_conv 32 \
    --rate_penalty 0.15 --num_train_epochs 2 --train_batch_size 16 --learning_rate 0.0002 --eval_step 10000 --bucket_by_length \
    --do_lower_case --seed $s --keep_checkpoints 1 --eval_batch_size 64 --max_seq_length 64 > $E/pred_kd.seed$s.txt 2>&1
  for t in 16 8; do
    OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --do_eval --teacher_model $R/teacher --data_dir $R/data/movie \
      --task_name movie --spiking_student_model $E/seed$s/pred_kd --output_dir $E/seed$s/eval_t$t --t_conv $t \
      --eval_batch_size 64 --do_lower_case --max_seq_length 64 > $E/eval_t$t.seed$s.txt 2>&1
  done
}
one 42 & one 7 & wait
for s in 42 7; do for t in 8 16; do echo "seed$s t$t $(grep -h 'movie.acc =\|mean_over_populations =' $E/seed$s/eval_t$t/eval_results.txt | tr '\n' ' ')"; done
  echo "seed$s t32 $(grep -h 'movie.acc =\|mean_over_populations =' $E/seed$s/pred_kd/eval_results.txt | tr '\n' ' ')"; done | tee $E/results.txt
