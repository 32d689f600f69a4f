#!/usr/bin/env bash
# The default preset of commit 2a6d2b7 on two more seeds (1 and 2), from the logged main job's teacher and
# augmented data (logs/quickstart-default): task IKD, prediction KD (its own dev evaluation at 32 steps), then
# dev evaluation at 8 and 16 steps, with the main job's exact commands. Seeds side by side, one thread each.
set -euo pipefail
R=runs/quickstart-default
E=/work/exp/seeds_d8k
PY=/work/run_d8k/.venv/bin/python
SPK="--vth 1.0 --membrane_init 0.5 --surrogate grid --train_simulation off"
cd /work/run_d8k
one() {
  s=$1
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir $R/augment --task_name movie \
    --spiking_student_model spiking_student_model/minilm --output_dir $E/seed$s/task_ikd $SPK --t_conv 32 \
    --init_from_teacher --aug_train --rate_penalty 0.75 --num_train_epochs 1 --train_batch_size 16 --learning_rate 0.0001 \
    --bucket_by_length --do_lower_case --seed $s --keep_checkpoints 1 --max_seq_length 64 > $E/task_ikd.seed$s.txt 2>&1
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir $R/augment --task_name movie \
    --spiking_student_model $E/seed$s/task_ikd --output_dir $E/seed$s/pred_kd $SPK --pred_distill --t_conv 32 --aug_train \
    --num_train_epochs 2 --train_batch_size 16 --learning_rate 0.0001 --eval_step 10000 --bucket_by_length \
    --do_lower_case --seed $s --keep_checkpoints 1 --eval_batch_size 64 --max_seq_length 64 > $E/pred_kd.seed$s.txt 2>&1
  for t in 16 8; do
    OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --do_eval --spiking_student_model $E/seed$s/pred_kd \
      --teacher_model $R/teacher --data_dir $R/data/movie --task_name movie --output_dir $E/seed$s/eval_t$t --t_conv $t \
      --eval_batch_size 64 --max_seq_length 64 --do_lower_case > $E/eval_t$t.seed$s.txt 2>&1
  done
}
one 1 & one 2 & wait
for s in 1 2; do for t in 8 16; do echo "seed$s t$t $(grep -h 'movie.acc =\|mean_over_populations =' $E/seed$s/eval_t$t/eval_results.txt | tr '\n' ' ')"; done
  echo "seed$s t32 $(grep -h 'movie.acc =\|mean_over_populations =' $E/seed$s/pred_kd/eval_results.txt | tr '\n' ' ')"; done | tee $E/results.txt
