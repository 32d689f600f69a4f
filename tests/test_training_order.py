"""Training data order with --bucket_by_length (distill/training.py): a permutation per epoch, a function of
(seed, epoch), batches of similar lengths in random order, and an exact resume."""
import numpy as np
import pytest

import spiking_bert_task_distill as task
from distill.training import BUCKET_POOL_BATCHES, bucketed_order, check_resume_settings, epoch_order, plan_epoch
from distill_fixtures import load_state, make_student_config, make_teacher, max_abs_difference, write_task

BATCH = 8


def sentence_lengths(count=1000, seed=3):
    return np.random.default_rng(seed).integers(3, 64, count)


def padded_tokens(order, lengths):
    batches = [order[start:start + BATCH] for start in range(0, len(order), BATCH)]
    return sum(len(rows) * lengths[rows].max() - lengths[rows].sum() for rows in batches)


def test_bucketed_order_is_a_permutation_that_depends_only_on_seed_and_epoch():
    lengths = sentence_lengths()
    first = bucketed_order(lengths, BATCH, seed=42, epoch=0)
    assert sorted(first) == list(range(len(lengths)))
    assert np.array_equal(first, bucketed_order(lengths.tolist(), BATCH, seed=42, epoch=0))
    assert not np.array_equal(first, bucketed_order(lengths, BATCH, seed=42, epoch=1))
    assert not np.array_equal(first, bucketed_order(lengths, BATCH, seed=7, epoch=0))
    steps = plan_epoch(len(lengths), BATCH, 2, 42, 0, lengths)
    assert np.array_equal(np.concatenate([micro for step in steps for micro in step]), first)
    assert all(len(step) == 2 for step in steps)


def test_bucketed_batches_pad_little_and_stay_shuffled():
    lengths = sentence_lengths()
    order = bucketed_order(lengths, BATCH, seed=42, epoch=0)
    shuffled = epoch_order(len(lengths), 42, 0)
    assert padded_tokens(order, lengths) < padded_tokens(shuffled, lengths) / 5
    batch_lengths = [lengths[order[start:start + BATCH]].mean() for start in range(0, len(order), BATCH)]
    # The batches' order is random, not sorted by length.
    assert not np.array_equal(batch_lengths, sorted(batch_lengths))
    assert abs(np.corrcoef(np.arange(len(batch_lengths)), batch_lengths)[0, 1]) < 0.2
    # A batch draws its sentences from one pool of the epoch's shuffle, not from the whole set.
    pool = BATCH * BUCKET_POOL_BATCHES
    position = np.argsort(shuffled)
    for start in range(0, len(order) - len(order) % BATCH, BATCH):
        assert len({position[i] // pool for i in order[start:start + BATCH]}) == 1


def test_partial_last_batch_stays_last():
    lengths = sentence_lengths(count=805)
    order = bucketed_order(lengths, BATCH, seed=1, epoch=0)
    assert sorted(order) == list(range(805))
    steps = plan_epoch(805, BATCH, 1, 1, 0, lengths)
    assert [len(step[0]) for step in steps] == [BATCH] * 100 + [5]


def test_resume_refuses_another_bucketing_and_reads_old_checkpoints_as_off():
    run = {"train_batch_size": 4, "gradient_accumulation_steps": 1, "seed": 42, "num_train_epochs": 2,
           "world_size": 1}
    check_resume_settings(run, {**run, "bucket_by_length": False}, "old-checkpoint")
    with pytest.raises(ValueError, match=r"--bucket_by_length off \(this run: on\)"):
        check_resume_settings(run, {**run, "bucket_by_length": True}, "old-checkpoint")


def test_bucketed_pred_distill_stop_and_resume_equals_uninterrupted(tmp_path):
    data = write_task(str(tmp_path / "data"), "sst-2", train=14, dev=4)
    teacher = make_teacher(str(tmp_path / "teacher"), num_labels=2)
    student = make_student_config(str(tmp_path / "student"), initializer_range=0.5)
    args = ["--data_dir", data, "--task_name", "sst-2", "--max_seq_length", "32", "--train_batch_size", "4",
            "--eval_batch_size", "4", "--num_train_epochs", "2", "--eval_step", "3", "--do_lower_case",
            "--teacher_model", teacher, "--spiking_student_model", student, "--pred_distill",
            "--learning_rate", "1e-2", "--bucket_by_length"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    task.main([*args, "--output_dir", str(full)])
    task.main([*args, "--output_dir", str(resumed), "--max_steps", "5"])
    with pytest.raises(SystemExit, match=r"--bucket_by_length on \(this run: off\)"):
        task.main([*args[:-1], "--output_dir", str(resumed), "--continue_train"])
    task.main([*args, "--output_dir", str(resumed), "--continue_train"])
    final = lambda d: load_state(str(d / "checkpoint-step8"))  # noqa: E731
    assert max_abs_difference(final(resumed), final(full)) == 0.0
    assert (resumed / "eval_results.txt").read_text() == (full / "eval_results.txt").read_text()


def test_one_best_checkpoint_rule_for_every_script():
    """A NaN dev score counts as -inf (finetune_teacher.py and the task script share TrainState.is_new_best)."""
    import math

    from distill.training import TrainState
    state = TrainState()
    chosen = []
    for step, score in enumerate([math.nan, math.nan, 0.5, 0.5, math.nan, 0.7, 0.6], 1):
        state.global_step = step
        if state.is_new_best(score):
            chosen.append(step)
    assert chosen == [1, 3, 6] and (state.best_metric, state.best_step) == (0.7, 6)
    older = TrainState(best_metric=math.nan, best_step=2)  # a NaN best saved by an earlier version
    older.global_step = 4
    assert older.is_new_best(0.1) and older.best_step == 4
