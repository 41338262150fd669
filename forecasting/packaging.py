"""Build the packaged model: `python -m forecasting.packaging` (needs ../shared/data).

Trains `spike_mlp` with its defaults on the AEMO SA1 5-minute prices of 2022-01-01 00:05 to
2022-10-01 00:00 NEM time (January to September; the benchmark's training span, so October to
December 2022 and the shipped sample day 2022-10-06 stay out of sample) and stores it in
forecasting/packaged/ as version `sa1-2022`, laid out like any model store (forecasting/registry.py).
Every `ModelStore` reads that folder, so `spike_mlp@sa1-2022` resolves without training and without
../shared. Rebuilding writes a new artifact only if the weights changed (same seed, same thread
count: same bytes); delete the old version record first, since versions are never overwritten.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

from autobidder import Region
from forecasting.datasets import load_nem
from forecasting.registry import PACKAGED_DIR, ModelStore, train

NAME, VERSION = "spike_mlp", "sa1-2022"
REGION = Region.SA1
TRAIN_END = "2022-10-01T00:00:00+10:00"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", default=VERSION)
    args = parser.parse_args()
    history = load_nem(REGION, end=datetime.fromisoformat(TRAIN_END))
    store = ModelStore(PACKAGED_DIR, packaged=None)
    started, cpu = time.perf_counter(), time.process_time()
    trained = train(store, NAME, history, {}, args.version)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    files = PACKAGED_DIR / trained.artifact_sha256 / "files"
    sizes = {p.name: p.stat().st_size for p in sorted(files.iterdir())}
    print(
        json.dumps(
            {
                **trained.as_dict(),
                "train_s": round(seconds, 1),
                "train_cpu_s": round(cpu_seconds, 1),
                "file_bytes": sizes,
            }
        )
    )


if __name__ == "__main__":
    main()
