"""Download the six benchmarks from the Hugging Face hub into the local layout bayeslora reads.

    python scripts/prepare_data.py --out data/      # then: export BAYESLORA_DATA_DIR=$PWD/data

Writes <out>/<local_dir>/<split>.jsonl for every split of every dataset config in conf/dataset/.
Needs network access; never called by the tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parent.parent / "conf" / "dataset"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--datasets", default="winogrande_s,winogrande_m,arc_c,arc_e,obqa,boolq")
    args = ap.parse_args()
    import datasets

    for name in args.datasets.split(","):
        src = OmegaConf.load(CONF / f"{name}.yaml").source
        dd = datasets.load_dataset(src.path, src.config)
        for split, ds in dd.items():
            path = args.out / src.local_dir / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as fh:
                for row in ds:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(f"{name:14s} {split:10s} {len(ds):6d} rows -> {path}")


if __name__ == "__main__":
    main()
