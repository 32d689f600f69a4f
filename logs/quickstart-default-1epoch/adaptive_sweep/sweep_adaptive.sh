#!/usr/bin/env bash
# Adaptive-rule sweep on the default quick start's seed-42 student at t_conv 32 (movie dev set).
set -u
cd /work/main
RUN=/tmp/fresh/runs/quickstart-default
for rule in "4 1 0.2 8" "2 2 0.2 6" "2 1 0.2 4"; do  # seed 42; seed 7 with 4 1 0.2 8 in bench14.sh
  set -- $rule
  out=/work/exp/sweep/k$1_p$2_m$3_s$4
  .venv/bin/python spiking_bert_task_distill.py --do_eval --spiking_student_model $RUN/seed42/pred_kd \
    --data_dir $RUN/data/movie --task_name movie --output_dir $out --t_conv 32 --max_seq_length 64 \
    --eval_batch_size 64 --do_lower_case --adaptive_t_conv --adaptive_check_every $1 --adaptive_patience $2 \
    --adaptive_margin $3 --adaptive_min_steps $4 --overwrite > $out.log 2>&1
  echo "$rule: $(grep -E '^movie.acc |^movie.distribution.steps.mean ' $out/eval_results.txt | tr '\n' ' ')"
done
