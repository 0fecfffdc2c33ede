"""Lossless PNG encoders side by side on phantom B-scans: bytes per image against encode time.

PNG encoding is the largest stage of a phantom build. This renders ``--n``
phantom images at ``--image-size`` and encodes them with every candidate in one
run (one thread, each the median of ``--repeats``): PIL at each zlib level (what a
user would otherwise call; level 6 is the baseline), OpenCV and imagecodecs
(libpng) where installed, a batched writer that applies one PNG filter to the
whole batch in numpy and compresses with zlib, zlib-ng, ISA-L or libdeflate, and
the library's own ``encode_png``. Every output is decoded with PIL and compared
with the source pixels, so a candidate that is not lossless fails the run.

    .venv/bin/python benchmarks/bench_png.py --n 1000 --json bench_png.json
    pip install opencv-python-headless imagecodecs zlib-ng deflate   # optional candidates
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import struct
import time
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def batched_png(
    compress: Callable[[bytes], bytes], filt: str
) -> Callable[[np.ndarray], list[bytes]]:
    """A mode-L PNG writer that filters the whole (N, H, W) batch in numpy (filter ``none``,
    ``sub`` or ``up``, the same for every row) and compresses each image with ``compress``."""
    code = {"none": 0, "sub": 1, "up": 2}[filt]

    def encode(images: np.ndarray) -> list[bytes]:
        n, h, w = images.shape
        if filt == "sub":
            body = images.copy()
            body[:, :, 1:] -= images[:, :, :-1]  # uint8 arithmetic wraps mod 256, as PNG wants
        elif filt == "up":
            body = images.copy()
            body[:, 1:, :] -= images[:, :-1, :]
        else:
            body = images
        rows = np.empty((n, h, w + 1), dtype=np.uint8)
        rows[:, :, 0] = code
        rows[:, :, 1:] = body
        head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        tail = _chunk(b"IEND", b"")
        return [head + _chunk(b"IDAT", compress(r.tobytes())) + tail for r in rows]

    return encode


def per_image(fn: Callable[[np.ndarray], bytes]) -> Callable[[np.ndarray], list[bytes]]:
    return lambda images: [fn(img) for img in images]


def candidates() -> dict[str, Callable[[np.ndarray], list[bytes]]]:
    out: dict[str, Callable[[np.ndarray], list[bytes]]] = {}

    def pil(level: int) -> Callable[[np.ndarray], bytes]:
        def enc(img: np.ndarray) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(img, mode="L").save(buf, format="PNG", compress_level=level)
            return buf.getvalue()

        return enc

    for level in (0, 1, 3, 6, 9):
        out[f"PIL level {level}" + (" (baseline)" if level == 6 else "")] = per_image(pil(level))
    try:
        import cv2

        for level in (1, 3, 6):
            params = [cv2.IMWRITE_PNG_COMPRESSION, level]
            out[f"OpenCV level {level}"] = per_image(
                lambda img, p=params: cv2.imencode(".png", img, p)[1].tobytes()
            )
    except ImportError:
        pass
    try:
        import imagecodecs

        for level in (1, 6):
            out[f"imagecodecs libpng level {level}"] = per_image(
                lambda img, lv=level: bytes(imagecodecs.png_encode(img, level=lv))
            )
    except ImportError:
        pass
    for filt in ("none", "sub", "up"):
        for level in (1, 6):
            out[f"batched {filt} + zlib {level}"] = batched_png(
                lambda b, lv=level: zlib.compress(b, lv), filt
            )
    try:
        from zlib_ng import zlib_ng

        for filt in ("sub", "up"):
            out[f"batched {filt} + zlib-ng 1"] = batched_png(lambda b: zlib_ng.compress(b, 1), filt)
    except ImportError:
        pass
    from isal import isal_zlib  # a dependency of the build extra

    for filt in ("none", "sub", "up"):
        for level in (0, 1, 2, 3):
            out[f"batched {filt} + ISA-L {level}"] = batched_png(
                lambda b, lv=level: isal_zlib.compress(b, lv), filt
            )
    try:
        import deflate

        for level in (1, 6):
            out[f"batched sub + libdeflate {level}"] = batched_png(
                lambda b, lv=level: deflate.zlib_compress(b, lv), "sub"
            )
    except ImportError:
        pass
    from synthoct_bench.dataset.writer import PNG_COMPRESS_LEVEL, PNG_ENCODER, encode_png

    out[f"encode_png: {PNG_ENCODER} {PNG_COMPRESS_LEVEL} (library default)"] = encode_png
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import numba

    from synthoct_bench import latent, rng
    from synthoct_bench.generators import PhantomGenerator

    numba.set_num_threads(1)
    ids = np.arange(args.n)
    images = PhantomGenerator(image_size=args.image_size).generate(
        latent.sample_z(ids, 0), rng.subject_seeds(0, rng.stream_id("image"), ids)
    )
    rows = []
    base = None
    for name, encode in candidates().items():
        blobs = encode(images)
        decoded = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in blobs])
        if not np.array_equal(decoded, images):
            raise SystemExit(f"{name} is not lossless")
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            encode(images)
            times.append(time.perf_counter() - t)
        ms = 1000 * statistics.median(times) / args.n
        kb = sum(len(b) for b in blobs) / args.n / 1000
        if "(baseline)" in name:
            base = (ms, kb)
        rows.append({"encoder": name, "ms_per_image": ms, "kb_per_image": kb})
    assert base is not None
    raw_kb = args.image_size**2 / 1000
    print(f"{args.n} phantom images, {args.image_size} px, one thread; raw {raw_kb:.1f} KB")
    head = f"{'encoder':<48}{'ms/image':>10}{'KB/image':>10}"
    print(head + f"{'speed vs PIL 6':>18}{'size vs PIL 6':>17}")
    for r in sorted(rows, key=lambda r: r["ms_per_image"]):
        r["speedup"] = base[0] / r["ms_per_image"]
        r["size_ratio"] = r["kb_per_image"] / base[1]
        print(
            f"{r['encoder']:<48}{r['ms_per_image']:>10.3f}{r['kb_per_image']:>10.1f}"
            f"{r['speedup']:>17.2f}x{r['size_ratio']:>16.3f}x"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "image_size": args.image_size, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
