"""Download GLUE into DATA_DIR/{CoLA,SST-2,MRPC,QQP,STS-B,MNLI,QNLI,RTE,WNLI,diagnostic}.

    python download_glue_data.py --data_dir glue_data --tasks all
    python download_glue_data.py --data_dir glue_data --tasks MRPC --path_to_mrpc ~/msr_paraphrase
"""
import argparse
import logging

from glue.download import TASKS, URL_BASE_ENV, DownloadError, download_glue


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default="glue_data", help="where the task folders go")
    parser.add_argument("--tasks", default="all", help=f"'all' or a comma-separated subset of {','.join(TASKS)}")
    parser.add_argument("--path_to_mrpc", default=None,
                        help="folder with msr_paraphrase_train.txt and msr_paraphrase_test.txt "
                             "(and optionally mrpc_dev_ids.tsv) instead of downloading them")
    parser.add_argument("--url_base", default=None,
                        help=f"fetch every file from URL_BASE/<file name> (also ${URL_BASE_ENV})")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    try:
        folders = download_glue(args.data_dir, args.tasks, args.url_base, args.path_to_mrpc)
    except (ValueError, DownloadError) as e:
        raise SystemExit(f"error: {e}") from None
    for task, folder in folders.items():
        print(f"{task}\t{folder}")


if __name__ == "__main__":
    main()
