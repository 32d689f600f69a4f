"""Download GLUE into DATA_DIR/{CoLA,SST-2,MRPC,QQP,STS-B,MNLI,QNLI,RTE,WNLI,diagnostic}.

    python download_glue_data.py --data_dir glue_data --tasks all
    python download_glue_data.py --data_dir glue_data --tasks MRPC --path_to_mrpc ~/msr_paraphrase
    python download_glue_data.py --data_dir glue_data --tasks all --source hf    # pip install -r requirements-hf.txt

--source archive (the default) fetches GLUE's own archives; --source hf reads the Hugging Face hub
dataset nyu-mll/glue (or --hf_path: another name such as glue, or a local folder laid out like the hub
repository, <config>/<split>-*.parquet) and writes the same files and columns, columns the hub lacks
holding a placeholder (glue/hf_download.py).
"""
import argparse
import logging

from glue.download import TASKS, URL_BASE_ENV, DownloadError, download_glue
from glue.hf_download import DEFAULT_HF_PATH, HF_REQUIREMENTS, download_glue_hf


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default="glue_data", help="where the task folders go")
    parser.add_argument("--tasks", default="all", help=f"'all' or a comma-separated subset of {','.join(TASKS)}")
    parser.add_argument("--source", choices=("archive", "hf"), default="archive",
                        help="GLUE's archives, or the Hugging Face datasets library (needs "
                             f"pip install -r {HF_REQUIREMENTS})")
    parser.add_argument("--path_to_mrpc", default=None,
                        help="(archive) folder with msr_paraphrase_train.txt and msr_paraphrase_test.txt "
                             "(and optionally mrpc_dev_ids.tsv) instead of downloading them")
    parser.add_argument("--url_base", default=None,
                        help=f"(archive) fetch every file from URL_BASE/<file name> (also ${URL_BASE_ENV})")
    parser.add_argument("--hf_path", default=None,
                        help=f"(hf) hub dataset name (default {DEFAULT_HF_PATH}; the older name glue works too) "
                             "or a local folder laid out like it: <config>/<split>-*.parquet")
    args = parser.parse_args(argv)
    archive_flags = [flag for flag, value in (("--path_to_mrpc", args.path_to_mrpc), ("--url_base", args.url_base))
                     if value is not None]
    if args.source == "hf" and archive_flags:
        raise SystemExit(f"error: {', '.join(archive_flags)} only applies to --source archive")
    if args.source == "archive" and args.hf_path is not None:
        raise SystemExit("error: --hf_path only applies to --source hf")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    try:
        if args.source == "hf":
            folders = download_glue_hf(args.data_dir, args.tasks, args.hf_path or DEFAULT_HF_PATH)
        else:
            folders = download_glue(args.data_dir, args.tasks, args.url_base, args.path_to_mrpc)
    except (ValueError, DownloadError) as e:
        raise SystemExit(f"error: {e}") from None
    for task, folder in folders.items():
        print(f"{task}\t{folder}")


if __name__ == "__main__":
    main()
