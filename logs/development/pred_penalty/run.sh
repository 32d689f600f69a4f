#!/usr/bin/env bash
# Prediction KD variants from the rate_penalty_run candidate's task-IKD students (shared vth 1.0, IKD rate
# penalty 0.75): one epoch on the augmented sentences with --rate_penalty $2 and extra flags $3, then dev
# evaluation at 8 and 16 steps (32 is the prediction-KD run's own evaluation). Seeds side by side, one thread each.
set -euo pipefail
NAME=$1; P=$2; EXTRA=${3:-}
R=/work/run_cand/runs/quickstart-default
E=/work/exp/$NAME
PY=/work/run_cand/.venv/bin/python
SPK="--vth 1.0 --membrane_init 0.5 --surrogate grid --train_simulation off"
cd /work/run_cand
one() {
  s=$1
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir $R/augment --aug_train --task_name movie \
    --spiking_student_model $R/seed$s/task_ikd --output_dir $E/seed$s/pred_kd $SPK --pred_distill --t_conv 32 \
    --rate_penalty $P $EXTRA --num_train_epochs 1 --train_batch_size 16 --learning_rate 0.0001 --eval_step 10000 --bucket_by_length \
    --do_lower_case --seed $s --keep_checkpoints 1 --eval_batch_size 64 --max_seq_length 64 > $E/pred_kd.seed$s.txt 2>&1
  for t in 16 8; do
    OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --do_eval --teacher_model $R/teacher --data_dir $R/data/movie \
      --task_name movie --spiking_student_model $E/seed$s/pred_kd --output_dir $E/seed$s/eval_t$t --t_conv $t \
      --eval_batch_size 64 --do_lower_case --max_seq_length 64 > $E/eval_t$t.seed$s.txt 2>&1
  done
}
mkdir -p $E
one 42 & one 7 & wait
for s in 42 7; do for t in 8 16; do echo "seed$s t$t $(grep -h 'movie.acc =\|mean_over_populations =' $E/seed$s/eval_t$t/eval_results.txt | tr '\n' ' ')"; done
  echo "seed$s t32 $(grep -h 'movie.acc =\|mean_over_populations =' $E/seed$s/pred_kd/eval_results.txt | tr '\n' ' ')"; done | tee $E/results.txt
