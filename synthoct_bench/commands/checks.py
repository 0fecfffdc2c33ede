"""Argument types that check a flag's value where it is parsed, before any work starts.

Each type is a callable for ``argparse``'s ``type=``: it returns the parsed value or
raises ``argparse.ArgumentTypeError`` with a message that says what the flag takes,
which :class:`OneLineParser` prints as one line (``synthoct build: error: argument
--n: ...``) with exit status 2. Every type also lists values it must refuse
(``bad_values``), so the test suite can walk every subcommand's flags with them.

Bounds are what the code and the machine can hold, not taste: a seed fits numpy's and
torch's 32-bit seeding, an image side stays at or below 1,024 px (the paper's images
are 512 px), and counts that decide memory or disk are checked again at run time
against this machine's estimate (:mod:`synthoct_bench.resources`).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import NoReturn

__all__ = [
    "BATCH",
    "BOOTSTRAP",
    "COUNT",
    "DEVICE_TYPES",
    "IMAGE_SIZE",
    "Integer",
    "LATENT_DIM",
    "LEARNING_RATE",
    "NOISE_LEVEL",
    "Number",
    "OneLineParser",
    "SEED",
    "STEPS",
    "WORKERS",
    "dataset_source",
    "device",
    "existing_folder",
    "existing_path",
    "image_source",
    "output_file",
    "output_folder",
]


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (``PROG: error: MESSAGE; see
    PROG --help``) and exit status 2, like the commands' own errors, instead of the
    usage block followed by the message."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def _grouped(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


class Integer:
    """An integer from ``minimum`` to ``maximum`` inclusive (``10_000`` is read too)."""

    __name__ = "integer"

    def __init__(self, minimum: int, maximum: int, why: str = "") -> None:
        if minimum > maximum:
            raise ValueError(f"empty range [{minimum}, {maximum}]")
        self.minimum, self.maximum, self.why = minimum, maximum, why

    def __call__(self, text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {self._range()}, got {text!r}"
            ) from None
        if not self.minimum <= value <= self.maximum:
            why = f" ({self.why})" if self.why else ""
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: give an integer from {self._range()}{why}"
            )
        return value

    def _range(self) -> str:
        return f"{_grouped(self.minimum)} to {_grouped(self.maximum)}"

    def bad_values(self) -> list[str]:
        """Values this type refuses: not a number, not an integer, just out of range."""
        return ["x", "1.5", str(self.minimum - 1), str(self.maximum + 1), str(10**30)]

    def __repr__(self) -> str:
        return f"Integer({self.minimum}, {self.maximum})"


class Number:
    """A finite real number in a range; ``open_low``/``open_high`` exclude that end."""

    __name__ = "number"

    def __init__(
        self,
        minimum: float,
        maximum: float,
        *,
        open_low: bool = False,
        open_high: bool = False,
        why: str = "",
    ) -> None:
        self.minimum, self.maximum, self.why = minimum, maximum, why
        self.open_low, self.open_high = open_low, open_high

    def __call__(self, text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number {self._range()}, got {text!r}"
            ) from None
        low_ok = value > self.minimum if self.open_low else value >= self.minimum
        high_ok = value < self.maximum if self.open_high else value <= self.maximum
        if not (math.isfinite(value) and low_ok and high_ok):
            why = f" ({self.why})" if self.why else ""
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: give a number {self._range()}{why}"
            )
        return value

    def _range(self) -> str:
        low = ">" if self.open_low else ">="
        high = "<" if self.open_high else "<="
        return f"{low} {_grouped(self.minimum)} and {high} {_grouped(self.maximum)}"

    def bad_values(self) -> list[str]:
        """Values this type refuses: text, NaN, infinity and each end when it is open."""
        bad = ["x", "nan", "inf", "-inf", "1e400"]
        if self.open_low:
            bad.append(repr(float(self.minimum)))
        elif math.isfinite(self.minimum):
            bad.append(repr(float(self.minimum) - max(1.0, abs(self.minimum))))
        if self.open_high:
            bad.append(repr(float(self.maximum)))
        elif math.isfinite(self.maximum):
            bad.append(repr(float(self.maximum) + max(1.0, abs(self.maximum))))
        return bad

    def __repr__(self) -> str:
        return f"Number({self.minimum}, {self.maximum})"


#: seeds: numpy's legacy and torch's seeding both take 32 bits
SEED = Integer(0, 2**32 - 1, "seeds are 32-bit")
#: an image or network input side; the paper's images are 512 px
IMAGE_SIZE = Integer(8, 1024, "the paper's images are 512 px")
#: images per optimizer step
BATCH = Integer(1, 65_536)
#: latent dims of a VAE (the paper's beta-VAE: 128)
LATENT_DIM = Integer(1, 4_096)
#: a count of subjects, images or draws; memory and disk are checked again at run time
COUNT = Integer(1, 10**9)
#: optimizer steps, epochs or generations
STEPS = Integer(1, 10**8)
#: a noise level sigma2 (the paper's: 0, 1, 9, 18, 49)
NOISE_LEVEL = Integer(0, 10**6)
#: bootstrap resamples (the paper: 1,000); each costs a pass over the subjects
BOOTSTRAP = Integer(1, 100_000)
#: local processes
WORKERS = Integer(1, max(64, 8 * (os.cpu_count() or 1)), "a few per CPU core at most")
#: an optimizer's learning rate
LEARNING_RATE = Number(0.0, 10.0, open_low=True)

#: torch device types a command can run on (``torch.device`` knows more, such as
#: ``meta``, that compute nothing a user wants)
DEVICE_TYPES: tuple[str, ...] = ("cpu", "cuda", "mps", "xpu")
_DEVICE = re.compile(rf"^(auto|({'|'.join(DEVICE_TYPES)})(:\d+)?)$")


def device(text: str) -> str:
    """A device name torch knows (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``xpu``) or
    ``auto``; whether this machine has it is checked when the command resolves it
    (:func:`synthoct_bench.devices.resolve_device`), since that needs torch."""
    name = str(text).strip().lower()
    if not _DEVICE.match(name):
        raise argparse.ArgumentTypeError(
            f"unknown device {text!r}: use auto, cpu, cuda, cuda:N, mps or xpu"
        )
    return name


device.bad_values = lambda: ["nosuch", "gpu", "cuda:x", "cuda:-1", ""]  # type: ignore[attr-defined]


def existing_path(text: str) -> str:
    """A file or folder that exists."""
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    if not Path(text).expanduser().exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist: check the path")
    return str(Path(text).expanduser())


existing_path.bad_values = lambda: ["", "{missing}"]  # type: ignore[attr-defined]


def existing_folder(text: str) -> str:
    """A folder that exists."""
    path = existing_path(text)
    if not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder: give a folder")
    return path


existing_folder.bad_values = lambda: ["", "{missing}", "{file}"]  # type: ignore[attr-defined]


def image_source(text: str) -> str:
    """``phantom`` (images rendered on the fly) or a folder of images."""
    return text if text == "phantom" else existing_folder(text)


image_source.bad_values = lambda: ["", "{missing}", "{file}"]  # type: ignore[attr-defined]


def dataset_source(text: str) -> str:
    """A dataset folder, or a Hub repo id (``ORG/NAME``) when no such path exists; the
    loader's own rule (:func:`synthoct_bench.dataset.load.local_root`), applied early."""
    from synthoct_bench.dataset.load import local_root

    try:
        local_root(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return str(text)


dataset_source.bad_values = lambda: ["", "{missing}", "{file}"]  # type: ignore[attr-defined]


def output_folder(text: str) -> str:
    """A folder to write into: absent (it is made) or a folder, never a plain file."""
    path = Path(str(text)).expanduser()
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder: give a folder path")
    return str(path)


output_folder.bad_values = lambda: ["", "{file}"]  # type: ignore[attr-defined]


def output_file(text: str) -> str:
    """A file to write: absent or a plain file, never a folder; ``-`` is kept (stdout)."""
    if text == "-":
        return text
    path = Path(str(text)).expanduser()
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder: give a file path")
    if path.parent.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{str(path.parent)!r} is a file, not a folder")
    return str(path)


output_file.bad_values = lambda: ["", "{folder}", "{file}/x.json"]  # type: ignore[attr-defined]
