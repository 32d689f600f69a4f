#!/usr/bin/env bash
# Shared stages for the pilots: data slices, teacher, corpus (as the default preset), run via quickstart's own jobs.
set -euo pipefail
cd /work/main
PY=/work/main/.venv/bin/python
B=/work/exp/base
A=~/.cache/spikingbert/assets
mkdir -p $B
$PY -c "
import quickstart, random
quickstart.write_data_slices('$B/data', '$A/movie_sst2', '$A/wiki/corpus.txt', 42, 4000, None, 5000)
" 2>/dev/null || true
$PY finetune_teacher.py --bert_model $A/teacher_minilm --data_dir $B/data/movie --task_name movie --output_dir $B/teacher --num_train_epochs 1 --train_batch_size 16 --learning_rate 5e-5 --eval_batch_size 64 --max_seq_length 64 --do_lower_case --seed 42 > $B/teacher.log 2>&1
$PY preprocess_training_data.py --train_corpus $B/data/corpus.txt --bert_model $A/teacher_minilm --reduce_memory --do_lower_case --epochs_to_generate 1 --max_seq_len 32 --seed 42 --output_dir $B/corpus > $B/corpus.log 2>&1
echo base done
