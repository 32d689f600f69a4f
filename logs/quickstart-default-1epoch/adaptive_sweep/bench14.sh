#!/usr/bin/env bash
set -u
cd /work/main
RUN=/tmp/fresh/runs/quickstart-default
out=/work/exp/sweep/seed7_k4_p1_m0.2_s8
.venv/bin/python spiking_bert_task_distill.py --do_eval --spiking_student_model $RUN/seed7/pred_kd \
    --data_dir $RUN/data/movie --task_name movie --output_dir $out --t_conv 32 --max_seq_length 64 \
    --eval_batch_size 64 --do_lower_case --adaptive_t_conv --adaptive_check_every 4 --adaptive_patience 1 \
    --adaptive_margin 0.2 --adaptive_min_steps 8 --overwrite > $out.log 2>&1
echo "seed7 4 1 0.2 8: $(grep -E '^movie.acc |^movie.distribution.steps.mean ' $out/eval_results.txt | tr '\n' ' ')"
echo "=== bench t_conv 32"
.venv/bin/python benchmarks/bench_eval_speed.py --spiking_student_model $RUN/seed42/pred_kd \
    --data_dir $RUN/data/movie --task_name movie --t_conv 32 --do_lower_case --max_seq_length 64 \
    --eval_batch_size 64 --limit 512 --rounds 2 --adaptive_patience 1
echo "=== bench t_conv 125"
.venv/bin/python benchmarks/bench_eval_speed.py --spiking_student_model $RUN/seed42/pred_kd \
    --data_dir $RUN/data/movie --task_name movie --t_conv 125 --do_lower_case --max_seq_length 64 \
    --eval_batch_size 64 --limit 128 --rounds 1 --adaptive_patience 1
