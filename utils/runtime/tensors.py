"""What the engines say about a model's input and output tensors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor; ``scale`` 0 means not quantized (``real = scale * (q - zero_point)``)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int
