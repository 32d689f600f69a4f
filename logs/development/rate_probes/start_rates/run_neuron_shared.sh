#!/usr/bin/env bash
# Probe 3: per-neuron thresholds, initial rate at t_conv 8 on the full dev set (lr 0).
cd /work/main
R=/work/run_default/runs/quickstart-default
PY=/work/run_default/.venv/bin/python
one() {
  name=$1; shift
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir /tmp/probe/full --task_name movie \
    --spiking_student_model spiking_student_model/minilm --output_dir /tmp/probe/$name --membrane_init 0.5 --surrogate grid \
    --train_simulation off --pred_distill --t_conv 8 --init_from_teacher --num_train_epochs 1 --train_batch_size 16 \
    --learning_rate 0.0 --eval_step 1000 --do_lower_case --seed 42 --eval_batch_size 64 --max_seq_length 64 "$@" > /tmp/probe/$name.txt 2>&1
  echo "$name $(grep -h 'mean_over_populations\|acc =' /tmp/probe/$name/eval_results.txt 2>/dev/null | tr '\n' ' ')"
}
one n99 --threshold_scope neuron --learn_threshold on --calibrate_vth 99 &
one n99.9 --threshold_scope neuron --learn_threshold on --calibrate_vth 99.9 &
wait
one sh --vth 1.0 
