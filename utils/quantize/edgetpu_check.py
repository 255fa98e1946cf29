"""Static Edge TPU compatibility check of a ``.tflite`` model, laid out like the compiler's log.

    python -m utils.edgetpu_check model.tflite [--strict]

The rules (see README, "Edge TPU notes"): fully 8-bit tensors with int32 biases, static
shapes, batch 1, only the three innermost dimensions larger than 1, supported op types and
versions, no fused activation on CONCATENATION/MAX_POOL_2D/AVERAGE_POOL_2D, constant PReLU
alpha; the compiler maps ops up to the first one it cannot map and leaves everything after it
on the CPU. edgetpu_compiler has the final word; this check tells you before you get there.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema

from utils.errors import ArgumentParser, run_cli
from utils.tflite import model as tflite_model

SUPPORTED_OPS = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM",
    "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE",
    "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB",
    "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
}
MAX_VERSION = {"RESIZE_NEAREST_NEIGHBOR": 2}
NO_FUSED_ACTIVATION = {"CONCATENATION", "MAX_POOL_2D", "AVERAGE_POOL_2D"}
EIGHT_BIT = {schema.TensorType.INT8, schema.TensorType.UINT8}
ON_CHIP_BYTES = 8 * 1024 * 1024
MAPPED = "Mapped to Edge TPU"
AFTER_FIRST_UNMAPPED = "More than one subgraph is not supported"
IO_CONVERSION = "Input/output conversion, runs on the CPU"
# TFLite_Detection_PostProcess (--outputs detections) ends the graph on the CPU, as in Coral's own SSD models.
POST_PROCESS = "TFLite_Detection_PostProcess"
EXPECTED_ON_CPU = "CPU, expected (last op)"
# A YOLOv7 (new_coords) head's size encoding takes a LOG just before the post-process (detection_graph.py).
EXPECTED_TAIL = "CPU, expected (new_coords size encoding)"


@dataclass
class OpVerdict:
    name: str
    version: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status == MAPPED


@dataclass
class Report:
    path: Path
    compiled: bool
    inputs: list[str]
    outputs: list[str]
    ops: list[OpVerdict] = field(default_factory=list)
    parameter_bytes: int = 0

    @property
    def first_unmapped(self) -> OpVerdict | None:
        expected = (IO_CONVERSION, EXPECTED_ON_CPU, EXPECTED_TAIL)
        return next((op for op in self.ops if not op.mapped and op.status not in expected), None)

    @property
    def all_mapped(self) -> bool:
        return self.first_unmapped is None

    def rows(self) -> list[tuple[str, int, str]]:
        counts = Counter((op.name, op.status) for op in self.ops)
        return [(name, count, status) for (name, status), count in counts.items()]

    @property
    def keeps_leaky_relu(self) -> bool:
        """A CPU model: convert.py's default keeps leaky ReLU, which the Edge TPU cannot run."""
        first = self.first_unmapped
        return first is not None and first.name == "LEAKY_RELU"

    def brief(self) -> str:
        """The verdict for a CPU model (leaky ReLU kept): what the compiler would do, and the way out."""
        on_tpu = sum(op.mapped for op in self.ops)
        return (f"Edge TPU: a CPU model. It keeps leaky ReLU (LEAKY_RELU), which the Edge TPU cannot run, so\n"
                f"the compiler would map {on_tpu} of {len(self.ops)} operations. For the Edge TPU, convert with "
                "--leaky prelu (exact,\nsame weights). The full report: "
                f"python -m utils.edgetpu_check {self.path}")

    def format(self) -> str:
        mib = self.parameter_bytes / 2 ** 20
        lines = [f"Edge TPU compatibility of {self.path} (static check; edgetpu_compiler has the final word)"]
        if self.compiled:
            lines.append("This model is already compiled for the Edge TPU (it contains an edgetpu-custom-op): "
                         "run it with --edge_tpu.")
        lines += [f"Input:  {', '.join(self.inputs)}", f"Output: {', '.join(self.outputs)}", "",
                  f"{'Operator':<30}{'Count':>6}  Status"]
        lines += [f"{name:<30}{count:>6}  {status}" for name, count, status in self.rows()]
        on_tpu = sum(op.mapped for op in self.ops)
        lines += ["", f"Number of operations that will run on Edge TPU: {on_tpu}",
                  f"Number of operations that will run on CPU: {len(self.ops) - on_tpu}"]
        first = self.first_unmapped
        if first:
            lines.append(f"First unmappable operation: {first.name} ({first.status}); "
                         "everything after it runs on the CPU.")
        cache = (f"fits the ~8 MiB on-chip cache, {8 - mib:.2f} MiB to spare" if self.parameter_bytes <= ON_CHIP_BYTES
                 else f"{mib - 8:.2f} MiB more than the ~8 MiB on-chip cache: streamed over USB every inference")
        lines.append(f"Parameters: {mib:.2f} MiB ({cache})")
        return "\n".join(lines)


def _tensor_text(tensor: schema.TensorT) -> str:
    shape = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
    if shape is None or not len(shape):  # a custom op's outputs, sized when the interpreter allocates
        return f"{tflite_model.type_name(tensor.type)} {(tensor.name or b'').decode()}"
    return f"{tflite_model.type_name(tensor.type)}{[int(d) for d in shape]}"


def _fused_activation(op: schema.OperatorT) -> int:
    options = op.builtinOptions
    return getattr(options, "fusedActivationFunction", 0) if options is not None else 0


def _op_problem(name: str, version: int, op: schema.OperatorT, tensors, buffers, graph_inputs) -> str | None:
    """Why the compiler would not map this op, or None."""
    if name not in SUPPORTED_OPS:
        return "Operation not supported"
    if version > MAX_VERSION.get(name, version):
        return "Operation version not supported"
    if name in NO_FUSED_ACTIVATION and _fused_activation(op):
        return "Fused activation function not supported"
    constant = [i for i in op.inputs if i >= 0 and buffers[tensors[i].buffer].data is not None]
    if name == "PRELU" and op.inputs[1] not in constant:
        return "PReLU alpha must be constant"
    for index in [i for i in op.inputs if i >= 0 and i not in constant] + list(op.outputs):
        tensor = tensors[index]
        if name == "QUANTIZE" and tensor.type == schema.TensorType.FLOAT32 and index in graph_inputs:
            continue
        if tensor.type not in EIGHT_BIT:
            return "Operation is working on an unsupported data type"
        signature = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
        if signature is not None and any(d < 0 for d in signature):
            return "Tensor has a dynamic size"
        if tensor.shape is not None and any(d > 1 for d in list(tensor.shape)[:-3]):
            return "Tensor has unsupported rank (only the 3 innermost dimensions may exceed 1)"
    for index in constant:
        if tensors[index].type not in EIGHT_BIT | {schema.TensorType.INT32}:
            return "Operation is working on an unsupported data type"
    return None


def _mark_size_encoding_tail(ops: list[OpVerdict], graph) -> None:
    """A graph that ends in the post-process and whose first unmappable op is the one LOG of the
    new_coords size encoding: that LOG and the few ops after it are the expected CPU tail."""
    first = next((number for number, op in enumerate(ops) if not op.mapped and op.status != IO_CONVERSION), None)
    if first is None or ops[first].name != "LOG" or ops[-1].name != POST_PROCESS:
        return
    if set(graph.operators[-1].outputs) != set(graph.outputs) or sum(op.name == "LOG" for op in ops) != 1:
        return
    for op in ops[first:-1]:
        op.status = EXPECTED_TAIL
    ops[-1].status = EXPECTED_ON_CPU


def check(path: str | Path) -> Report:
    """Verdict for every operator of the model's first subgraph, in execution order."""
    model = tflite_model.load(path)
    graph = model.subgraphs[0]
    tensors, buffers = graph.tensors, model.buffers
    report = Report(Path(path), False, [_tensor_text(tensors[i]) for i in graph.inputs],
                    [_tensor_text(tensors[i]) for i in graph.outputs])
    graph_inputs, graph_outputs = set(graph.inputs), set(graph.outputs)
    blocked = False
    for op in graph.operators or []:
        code = model.operatorCodes[op.opcodeIndex]
        name = tflite_model.op_name(code)
        if name == "CUSTOM":
            name = (code.customCode or b"custom").decode()
            if name == tflite_model.EDGETPU_CUSTOM_OP:
                report.compiled = True
                report.ops.append(OpVerdict(name, code.version, MAPPED))
                continue
        problem = _op_problem(name, code.version, op, tensors, buffers, graph_inputs)
        io_conversion = (name == "QUANTIZE" and tensors[op.inputs[0]].type == schema.TensorType.FLOAT32
                         and op.inputs[0] in graph_inputs) or \
                        (name == "DEQUANTIZE" and op.outputs[0] in graph_outputs)
        last_post_process = name == POST_PROCESS and set(op.outputs) == graph_outputs
        if io_conversion:
            status = IO_CONVERSION
        elif last_post_process and not blocked:
            status = EXPECTED_ON_CPU
        elif blocked:
            status = AFTER_FIRST_UNMAPPED
        else:
            status = problem or MAPPED
            blocked = problem is not None
        report.ops.append(OpVerdict(name, code.version, status))
    _mark_size_encoding_tail(report.ops, graph)
    constant_tensors = {t.buffer for t in tensors if buffers[t.buffer].data is not None}
    report.parameter_bytes = sum(len(buffers[b].data) for b in constant_tensors)
    return report


def main() -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help=".tflite model (plain or _edgetpu.tflite)")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless every op maps")
    args = parser.parse_args()
    report = check(args.model)
    print(report.format())
    return 1 if args.strict and not report.all_mapped else 0


if __name__ == "__main__":
    run_cli(main)
