#!/usr/bin/env bash
# Probe 2: converted student (init_from_teacher + calibration at t_conv 32, lr 0), full dev at t_conv 8 / 16.
cd /work/main
R=/work/run_default/runs/quickstart-default
PY=/work/run_default/.venv/bin/python
one() {
  p=$1
  OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --teacher_model $R/teacher --data_dir /tmp/probe/data --task_name movie \
    --spiking_student_model spiking_student_model/minilm --output_dir /tmp/probe/c$p --membrane_init 0.5 --surrogate grid \
    --train_simulation off --pred_distill --t_conv 32 --init_from_teacher --num_train_epochs 1 --train_batch_size 16 \
    --learning_rate 0.0 --eval_step 1000 --do_lower_case --seed 42 --eval_batch_size 64 --max_seq_length 64 \
    --threshold_scope population --learn_threshold on --calibrate_vth $p > /tmp/probe/c$p.txt 2>&1
  for t in 8 16; do
    OMP_NUM_THREADS=1 $PY spiking_bert_task_distill.py --do_eval --teacher_model $R/teacher --data_dir /tmp/probe/full \
      --task_name movie --spiking_student_model /tmp/probe/c$p --output_dir /tmp/probe/c$p/eval_t$t --t_conv $t \
      --eval_batch_size 64 --do_lower_case --max_seq_length 64 > /tmp/probe/c$p.eval$t.txt 2>&1
    echo "p$p t$t $(grep -h 'movie.acc =\|mean_over_populations =' /tmp/probe/c$p/eval_t$t/eval_results.txt | tr '\n' ' ')"
  done
}
one 97 & one 98 & wait
one 96 & one 99 & wait
