"""distill/curves.py: the curves read from a log.txt, and the figure written from them."""
import os

from distill.curves import read_curves, write_curves

LOG = """12/03/2026 16:57:10 INFO distill.script: 4 optimisation steps over 2 epochs, schedule none
12/03/2026 16:57:37 INFO distill.training: step 2 lr 0.0001 att_loss=9.5 loss=11 rate=0.15 rep_loss=1.5
12/03/2026 16:57:38 INFO distill.task: step 2 dev: mnli {'acc': 0.5} eval_loss 0.7; mnli-mm {'acc': 0.25} eval_loss 0.9
12/03/2026 16:58:03 INFO distill.training: step 4 lr 5e-05 att_loss=7 loss=8 rate=0.125 rep_loss=1
12/03/2026 16:58:05 INFO distill.training: step 4 lr 5e-05 att_loss=6 loss=7 rate=0.1 rep_loss=1
12/03/2026 16:58:06 INFO distill.task: step 4 dev: mnli {'acc': 0.75} eval_loss 0.5; mnli-mm {'acc': 0.5} eval_loss 0.6
"""


def test_losses_rate_and_dev_scores_are_read_per_step(tmp_path):
    (tmp_path / "log.txt").write_text(LOG)
    curves = read_curves(str(tmp_path / "log.txt"))
    # Step 4 was logged twice (a resumed run repeats its last steps): the later line wins.
    assert curves["losses"] == {"att_loss": {2: 9.5, 4: 6.0}, "loss": {2: 11.0, 4: 7.0}, "rep_loss": {2: 1.5, 4: 1.0}}
    assert curves["rate"] == {2: 0.15, 4: 0.1}
    assert curves["dev"] == {"mnli acc": {2: 0.5, 4: 0.75}, "mnli eval_loss": {2: 0.7, 4: 0.5},
                             "mnli-mm acc": {2: 0.25, 4: 0.5}, "mnli-mm eval_loss": {2: 0.9, 4: 0.6}}
    path = write_curves(str(tmp_path), "test")
    assert path == os.path.join(str(tmp_path), "curves.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_no_figure_without_training_lines(tmp_path):
    assert write_curves(str(tmp_path), "no log") is None
    (tmp_path / "log.txt").write_text(LOG.splitlines()[0] + "\n")
    assert write_curves(str(tmp_path), "no steps") is None
    assert not (tmp_path / "curves.png").exists()
