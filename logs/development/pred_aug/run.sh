#!/usr/bin/env bash
# Experiment: prediction KD for 1 epoch on the augmented sentences (instead of 2 on the originals), from the
# default run's IKD students; then evaluation at 8 and 16 steps. Seeds side by side, one thread each.
set -euo pipefail
R=/work/run_default/runs/quickstart-default
E=/work/exp/predaug
PY=/work/run_default/.venv/bin/python
mkdir -p $E/data && ln -sf $R/augment/train_aug.tsv $E/data/train_aug.tsv && ln -sf $R/data/movie/dev.tsv $E/data/dev.tsv
SPK="--vth 1.0 --membrane_init 0.5 --surrogate grid --train_simulation off --threshold_scope population --learn_threshold on"
cd /work/run_default
one() {
  s=$1
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir $E/data --task_name movie \
    --spiking_student_model $R/seed$s/task_ikd --output_dir $E/seed$s/pred_kd $SPK --pred_distill --t_conv 32 --aug_train \
    --num_train_epochs 1 --train_batch_size 16 --learning_rate 1e-4 --eval_step 5000 --bucket_by_length --do_lower_case \
    --seed $s --keep_checkpoints 1 --max_seq_length 64 --eval_batch_size 64 > $E/pred_kd.seed$s.txt 2>&1
  for t in 8 16; do
    OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --do_eval --teacher_model $R/teacher --data_dir $R/data/movie --task_name movie \
      --spiking_student_model $E/seed$s/pred_kd --output_dir $E/seed$s/eval_t$t --t_conv $t --eval_batch_size 64 \
      --do_lower_case --max_seq_length 64 > $E/eval_t$t.seed$s.txt 2>&1
  done
}
one 42 & one 7 & wait
for s in 42 7; do for t in 8 16; do echo "seed$s t$t $(grep -h 'movie.acc =\|mean_over_populations =' $E/seed$s/eval_t$t/eval_results.txt | tr '\n' ' ')"; done; done
