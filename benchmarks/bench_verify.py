"""What checking shards against the manifest costs readers, and what `synthoct verify` costs.

On a built dataset (default: the ``small`` preset, 55,000 subjects, 875 MB), times
in one run, each the median of ``--repeats``:

- ``read_columns`` of the train split's EBE targets and of the test split's scoring
  columns, and ``score`` of an oracle submission at noise 9: without verification
  (``verify=False``), with a cold checksum cache (every shard hashed) and a warm one
  (the shards verified before, unchanged);
- ``verify`` in full, ``--quick`` (no sha256) and without the content check.

    .venv/bin/python benchmarks/bench_verify.py --data data/small --json bench_verify.json

The OS page cache is warmed first, so every figure reads from memory: the cold
figures are the hashing itself, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _median_seconds(fn, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/small", help="a built dataset folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    cache_dir = Path(tempfile.mkdtemp(prefix="synthoct-bench-verify-"))
    os.environ["SYNTHOCT_CACHE_DIR"] = str(cache_dir)
    warnings.simplefilter("ignore")  # verify=False warns on every call

    from synthoct_bench.dataset import read_columns, read_metadata
    from synthoct_bench.dataset.integrity import cache_path
    from synthoct_bench.dataset.verify import verify
    from synthoct_bench.scoring import score, write_submission

    data = args.data
    meta = read_metadata(data)
    for entry in meta.shards:  # warm the page cache: time hashing, not the disk
        (Path(data) / entry.path).read_bytes()

    def cold() -> None:
        cache_path().unlink(missing_ok=True)

    test = read_columns(data, "test", ["subject_id", "eta"], verify=False)
    sub = Path(cache_dir) / "oracle_s9.parquet"
    write_submission(sub, test["subject_id"], test["eta"] / np.sqrt(10), noise=9, split="test",
                     dataset=data)  # fmt: skip

    cases = {
        "read_columns train eta_ebe_s9": lambda v: read_columns(
            data, "train", ["subject_id", "eta_ebe_s9"], verify=v
        ),
        "read_columns test (scoring columns)": lambda v: read_columns(
            data, "test", ["subject_id", "eta", "eta_noisy_s9", "eta_ebe_s9", "obs_s9"], verify=v
        ),
        "score oracle, noise 9, 1000 resamples": lambda v: score(sub, data, 9, verify=v),
    }
    rows = []
    for name, fn in cases.items():
        fn(False)  # warm imports and numba
        off = _median_seconds(lambda fn=fn: fn(False), args.repeats)
        cold_s = _median_seconds(lambda fn=fn: fn(True), args.repeats, before=cold)
        warm_s = _median_seconds(lambda fn=fn: fn(True), args.repeats)
        rows.append(
            {
                "case": name,
                "verify_off_s": off,
                "cold_cache_s": cold_s,
                "warm_cache_s": warm_s,
                "cold_ratio": cold_s / off,
                "warm_ratio": warm_s / off,
            }
        )
        print(
            f"{name:<40} off {off:7.3f} s   cold {cold_s:7.3f} s ({cold_s / off:5.2f}x)   "
            f"warm {warm_s:7.3f} s ({warm_s / off:5.2f}x)"
        )
    full = _median_seconds(lambda: verify(data), 1)
    quick = _median_seconds(lambda: verify(data, check_sha=False), 1)
    no_content = _median_seconds(lambda: verify(data, content=False), 1)
    print(f"verify: full {full:.1f} s, --quick {quick:.1f} s, without content {no_content:.1f} s")
    result = {
        "data": str(data),
        "n": meta.n,
        "bytes": sum(e.bytes for e in meta.shards),
        "repeats": args.repeats,
        "readers": rows,
        "verify_s": {"full": full, "quick": quick, "no_content": no_content},
    }
    shutil.rmtree(cache_dir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
