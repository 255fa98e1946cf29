"""Which rounding an int8 kernel set uses, found from the values it computes.

``explain`` recomputes every rescaling op of a model (CONV_2D, LEAKY_RELU, PRELU) from one machine's
own intermediate tensors under each scheme of ``utils.quantize.numpy_kernels``, and counts how many
of that machine's output values each scheme reproduces. A scheme that reproduces 100 % of an op's
values is how that kernel set computes the op. ``with_all_outputs`` writes the model that hands
those intermediate tensors back, even from inside a delegate.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.quantize.numpy_kernels import INTEGER_AND_FLOAT, RESCALING, SCHEMES, Graph, clipped, run
from utils.tflite import model as tflite


@dataclass(frozen=True)
class OpMatch:
    """How well each scheme reproduces one op's output on one machine."""
    index: int
    op: str
    output: str
    values: int
    matched: dict[str, float]  # scheme: share of the output values it reproduces exactly

    @property
    def scheme(self) -> str:
        """The schemes that reproduce every value (``single=fp32`` when both do), or the closest with its share."""
        exact = [scheme for scheme, share in self.matched.items() if share == 1.0]
        best = max(self.matched, key=self.matched.get)
        return "=".join(exact) if exact else f"~{best} ({self.matched[best]:.2%})"


def explain(model_path: Path, tensors: dict[str, np.ndarray]) -> list[OpMatch]:
    """For each rescaling op whose input and output are in ``tensors`` (one machine's intermediate
    tensors, by name): the share of its output values each scheme reproduces."""
    graph, found = Graph(Path(model_path)), []
    for index, name, op in graph.ops():
        source, output = graph.name(op.inputs[0]), graph.name(op.outputs[0])
        if name not in RESCALING or source not in tensors or output not in tensors:
            continue
        schemes = list(SCHEMES if name == "LEAKY_RELU" else INTEGER_AND_FLOAT)
        dtype, actual = graph.dtype(op.outputs[0]), tensors[output]
        matched = {scheme: float((clipped(values, dtype) == actual).mean())
                   for scheme, values in RESCALING[name](graph, op, tensors[source], schemes).items()}
        found.append(OpMatch(index, name, output, actual.size, matched))
    return found


def by_op(matches: list[OpMatch]) -> dict[str, str]:
    """{op name: the scheme that reproduces all its values in every op of that kind, or the closest}."""
    found = {}
    for name in dict.fromkeys(m.op for m in matches):
        ops = [m for m in matches if m.op == name]
        worst = {scheme: min(m.matched[scheme] for m in ops) for scheme in ops[0].matched}
        found[name] = OpMatch(-1, name, "", 0, worst).scheme
    return found


def reproduces(model_path: Path, tensors: dict[str, np.ndarray], schemes: dict[str, str]) -> bool:
    """Whether the numpy engine, rounding as ``schemes`` says, computes the model's outputs in
    ``tensors`` (one machine's, by name) bit for bit from the input there."""
    graph = Graph(Path(model_path))
    simulated = run(graph, tensors[graph.name(graph.graph.inputs[0])], schemes)
    return all(np.array_equal(simulated[graph.name(i)], tensors[graph.name(i)]) for i in graph.graph.outputs)


def with_all_outputs(model_path: Path, out: Path) -> list[str]:
    """Write a copy of the model whose outputs are every tensor an op writes, so that a delegate
    (XNNPACK) hands back its intermediate values too; the names of those outputs."""
    graph = Graph(Path(model_path))
    written = [index for _, _, op in graph.ops() for index in op.outputs]
    graph.graph.outputs = list(dict.fromkeys([*graph.graph.outputs, *written]))
    Path(out).write_bytes(tflite.pack(graph.model))
    return [graph.name(index) for index in graph.graph.outputs]
