#!/usr/bin/env bash
# The default preset's recipe (commit c932981, 3 augmentation tries) with the training split the other way: task IKD 1 epoch instead
# of 2 on the augmented sentences (rate penalty 0.75), prediction KD 2 epochs instead of 1 on them (rate
# penalty 0.15, one dev evaluation at its end), from the logged default run's teacher and augmented data;
# then dev evaluation at 8 and 16 steps (32 is prediction KD's own). Seeds side by side, one thread each.
set -euo pipefail
R=/work/run_n3/runs/quickstart-default
E=/work/exp/alloc
PY=/work/run_n3/.venv/bin/python
SPK="--vth 1.0 --membrane_init 0.5 --surrogate grid --train_simulation off"
cd /work/run_n3
one() {
  s=$1
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir $R/augment --aug_train --task_name movie \
    --spiking_student_model spiking_student_model/minilm --output_dir $E/seed$s/task_ikd $SPK --t_conv 32 \
    --init_from_teacher --rate_penalty 0.75 --num_train_epochs 1 --train_batch_size 16 --learning_rate 0.0001 \
    --bucket_by_length --do_lower_case --seed $s --keep_checkpoints 1 --max_seq_length 64 > $E/task_ikd.seed$s.txt 2>&1
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir $R/augment --aug_train --task_name movie \
    --spiking_student_model $E/seed$s/task_ikd --output_dir $E/seed$s/pred_kd $SPK --pred_distill --t_conv 32 \
    --rate_penalty 0.15 --num_train_epochs 2 --train_batch_size 16 --learning_rate 0.0001 --eval_step 10000 --bucket_by_length \
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
