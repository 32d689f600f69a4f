#!/usr/bin/env bash
# Probe 4: rate penalty scale, shared vth, task IKD 300 steps from teacher init.
cd /work/main
R=/work/run_default/runs/quickstart-default
PY=/work/run_default/.venv/bin/python
one() {
  name=$1; shift
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir $R/augment --task_name movie \
    --spiking_student_model spiking_student_model/minilm --output_dir /tmp/probe/$name --vth 1.0 --membrane_init 0.5 --surrogate grid \
    --train_simulation off --t_conv 32 --init_from_teacher --aug_train --num_train_epochs 2 --train_batch_size 16 \
    --learning_rate 0.0001 --bucket_by_length --do_lower_case --seed 42 --max_seq_length 64 --max_steps 300 --logging_steps 50 "$@" > /tmp/probe/$name.txt 2>&1
}
one w0 --rate_penalty 1e-9 &
one w3 --rate_penalty 3 &
wait
one w1 --rate_penalty 1 &
one w1.5 --rate_penalty 1.5 &
wait
