"""Quick start: teacher, spiking student and evaluation on packaged real data, from nothing to a results table.

The default preset trains the student for few time steps (README, Few time steps); --paper runs the
paper's method as published.

    ./quickstart.sh [--preset NAME | --smoke | --paper | --reference | --full] [--seeds S ...] [--run_dir DIR]
                    [--overwrite]     (or: python quickstart.py ...)

Every stage is one of the project's scripts run as a subprocess; its command line is printed and
logged first, so any stage can be rerun by hand (pipeline/stages.py; presets in pipeline/presets.py):
  assets      prepare_assets.py: the all-MiniLM-L6-v2 teacher, the movie-review task, a Wikipedia sample
  data        the preset's slices of the movie task and the corpus, written into the run folder
  teacher     finetune_teacher.py: MiniLM fine-tuned on the movie task (the task teacher)
  augment     data_augmentation.py: augmented training sentences for task IKD (presets that use it)
  corpus      preprocess_training_data.py: the corpus as pregenerated BERT instances (presets with general KD)
  general_kd  spiking_bert_general_distill.py: MiniLM -> the 3-layer spiking student (presets that use it)
  task_ikd    spiking_bert_task_distill.py: task-based internal-layer KD from the task teacher
  pred_kd     spiking_bert_task_distill.py --pred_distill: prediction-layer KD, best dev checkpoint kept
  eval_t<T>   at the final student's training t_conv T, a copy of prediction KD's own evaluation (the same files)
  eval        spiking_bert_task_distill.py --do_eval --adaptive_t_conv --readout_steps ...: the final student
              at its training t_conv with the flags' default adaptive rule, and at every other t_conv of the
              preset as readouts of the same simulation (eval/t<S>/)
Distillation and evaluation stages run once per seed of the preset (in seed<N>/ with several seeds).
Results go to results.md, results.json and tradeoff.png (accuracy and energy per sentence against the time
steps) in the run folder, each training stage's curves.png to curves/<stage>.png; each stage's console
output to logs/.
A stage whose folder holds stage_done.json with the same settings is reused; a folder made with other
settings is refused unless --overwrite (which redoes that stage and those after it).
"""
import argparse
import logging
import os
import sys
import time

from corpus.assets import asset_paths, default_cache_dir
from distill.cli import MAX_SEED
from distill.script import INTERRUPTED_EXIT_CODE
from pipeline.presets import DEFAULT_PRESET, PRESETS, with_augmentation
from pipeline.report import collect_results, gather_curves, results_markdown, write_tradeoff_plot
from pipeline.stages import (REPO, RUN_RECORD_NAME, build_stages, check_output_folder, check_run_dir,
                             execute_seeds_side_by_side, plan, prepare_assets, shared_folders, show_path,
                             stage_settings, stopped_stages, write_json_atomic)
from transformer.file_utils import error_line, write_atomically

logger = logging.getLogger("quickstart")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--preset", choices=list(PRESETS), help="a preset of pipeline/presets.py (default: default)")
    size.add_argument("--smoke", action="store_const", dest="preset", const="smoke",
                      help="tiny slices, a few minutes on a CPU: checks that everything runs")
    size.add_argument("--paper", action="store_const", dest="preset", const="paper",
                      help="the paper's method (general KD, IKD at 8 steps, prediction KD at 32) at the default budget")
    size.add_argument("--reference", action="store_const", dest="preset", const="reference",
                      help="the full-data reference run: every training sentence, a converged teacher (about 4 hours "
                           "on a 2-core CPU)")
    size.add_argument("--full", action="store_const", dest="preset", const="full",
                      help="all the movie data and corpus, the paper's t_conv 125 (for a GPU)")
    parser.set_defaults(preset=DEFAULT_PRESET)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="distillation seeds (default: the preset's); in the same run folder, the stages of "
                             "seeds already run are reused, so --seeds 42 7 1 2 adds two seeds to a default run")
    parser.add_argument("--run_dir", default=None, help="output folder (default runs/quickstart-<preset>)")
    parser.add_argument("--shared_dir", default=None,
                        help="keep the data, teacher, augmentation and corpus stages in this folder instead of the "
                             "run folder, so that runs of presets with the same data and teacher (default, binary, "
                             "ternary, energy, ternary_energy, deep) train one teacher: each reuses what another "
                             "wrote with the same settings")
    parser.add_argument("--cache_dir", default=None, help=f"packaged assets (default {default_cache_dir()})")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo stages whose folders were made with other settings")
    parser.add_argument("--aug", choices=("on", "off"), default=None,
                        help="task IKD on TinyBERT-augmented sentences (default: the preset's)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="seeds trained side by side, each stage with cpu_count / jobs torch threads "
                             "(default: the number of seeds, at most the number of CPU cores)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except KeyboardInterrupt:
        stopped = stopped_stages()
        where = f" during {', '.join(stopped)}" if stopped else ""
        print(f"interrupted{where}; the finished stages are kept: rerun the same command to go on (an "
              "unfinished stage starts again)", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
    except OSError as e:  # a disk that is full or may not be written
        sys.exit(f"error: {error_line(e)}")


def run(args):
    preset = with_augmentation(PRESETS[args.preset], args.aug)
    if args.seeds:
        if len(set(args.seeds)) != len(args.seeds):
            raise SystemExit(f"error: --seeds {' '.join(map(str, args.seeds))} repeats a seed")
        if not all(0 <= seed <= MAX_SEED for seed in args.seeds):
            raise SystemExit(f"error: --seeds must be in [0, {MAX_SEED}], got {' '.join(map(str, args.seeds))}")
        preset["seeds"] = args.seeds
    name = args.preset + ("" if args.aug is None else f"-aug-{args.aug}")
    run_dir = os.path.abspath(args.run_dir or os.path.join(REPO, "runs", f"quickstart-{name}"))
    if args.jobs is not None and args.jobs < 1:
        raise SystemExit(f"error: --jobs must be at least 1, got {args.jobs}")
    jobs = args.jobs or min(len(preset["seeds"]), os.cpu_count() or 1)
    check_run_dir(run_dir)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(asctime)s quickstart: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[console])
    assets = asset_paths(args.cache_dir)
    shared = {}
    if args.shared_dir:
        shared_dir = os.path.abspath(args.shared_dir)
        check_output_folder(shared_dir, "--shared_dir")
        shared = shared_folders(shared_dir)
    stages = build_stages(preset, run_dir, assets, shared)
    settings = stage_settings(stages)
    to_run = plan(stages, settings, args.overwrite)  # refuses mixed settings before anything is written

    os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
    write_json_atomic(os.path.join(run_dir, RUN_RECORD_NAME), {"preset": name, "repository": REPO, "jobs": jobs})
    log_file = logging.FileHandler(os.path.join(run_dir, "logs", "quickstart.txt"))
    log_file.setFormatter(console.formatter)
    logging.getLogger().addHandler(log_file)
    logger.info("preset %s, run folder %s, %d job(s)", name, show_path(run_dir), jobs)
    started = time.monotonic()
    timings = {"assets": prepare_assets(assets, run_dir)}
    timings.update(execute_seeds_side_by_side(stages, settings, to_run, run_dir, jobs))

    results = {**collect_results(name, preset, stages, timings), "wall_seconds": round(time.monotonic() - started)}
    write_json_atomic(os.path.join(run_dir, "results.json"), results)
    markdown = results_markdown(results)
    write_atomically(os.path.join(run_dir, "results.md"), lambda f: f.write(markdown))
    write_tradeoff_plot(results, os.path.join(run_dir, "tradeoff.png"))
    gather_curves(stages, run_dir)
    print(markdown)
    logger.info("results in %s, %s and %s", *(show_path(os.path.join(run_dir, name))
                                              for name in ("results.md", "results.json", "tradeoff.png")))


if __name__ == "__main__":
    main()
