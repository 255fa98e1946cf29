"""A stand-in Edge TPU for tests and benches: ``standin_edgetpu.c`` (a libedgetpu with the same ABI,
whose devices can fail on a schedule) and models "compiled" for it.

A stand-in compiled model is a real model with one ``edgetpu-custom-op`` after its input, which the
stand-in's delegate claims and computes as a copy: the results are the model's own, the model needs
``--edge_tpu`` as a compiled one does, and every ``invoke()`` passes through the stand-in.
"""
from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np

from utils.runtime.edgetpu import LIBRARY_VARIABLE
from utils.tflite import model as tflite_model

SOURCE = Path(__file__).with_name("standin_edgetpu.c")


def build(directory: Path) -> Path:
    """The stand-in library, compiled into ``directory`` with the system C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) to build the stand-in Edge TPU library")
    library = Path(directory) / "libstandin_edgetpu.so"
    subprocess.run([compiler, "-Wall", "-Werror", "-O1", "-shared", "-fPIC", "-o", str(library), str(SOURCE)],
                   check=True)
    return library


def environment(library: Path, devices: str = "usb", faults: str = "", log: Path | None = None,
                invoke_ms: int = 0) -> dict[str, str]:
    """Environment variables pointing the toolkit at the stand-in: ``devices`` as "usb,usb,pci";
    ``faults`` as "D@N[+T][/P];…" (see standin_edgetpu.c); ``invoke_ms`` makes every invoke that slow."""
    variables = {LIBRARY_VARIABLE: str(library), "STANDIN_EDGETPU_DEVICES": devices}
    if invoke_ms:
        variables["STANDIN_EDGETPU_INVOKE_MS"] = str(round(invoke_ms))
    if faults:
        variables["STANDIN_EDGETPU_FAULTS"] = faults
    if log is not None:
        variables["STANDIN_EDGETPU_LOG"] = str(log)
    return variables


def compile_for_standin(source: Path, target: Path) -> Path:
    """``source`` with an ``edgetpu-custom-op`` copying its input in front of everything else."""
    schema = tflite_model._schema()
    model = tflite_model.load(source)
    graph = model.subgraphs[0]
    original = graph.inputs[0]
    copied = copy.deepcopy(graph.tensors[original])
    copied.name = (copied.name.decode() if isinstance(copied.name, bytes) else copied.name) + "/edgetpu_copy"
    buffer = schema.BufferT()
    model.buffers.append(buffer)
    copied.buffer = len(model.buffers) - 1
    graph.tensors.append(copied)
    copy_index = len(graph.tensors) - 1
    for operator in graph.operators:
        operator.inputs = np.where(np.asarray(operator.inputs) == original, copy_index, operator.inputs).astype(np.int32)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = tflite_model.EDGETPU_CUSTOM_OP
    code.version = 1
    model.operatorCodes.append(code)
    operator = schema.OperatorT()
    operator.opcodeIndex = len(model.operatorCodes) - 1
    operator.inputs = np.array([original], np.int32)
    operator.outputs = np.array([copy_index], np.int32)
    graph.operators.insert(0, operator)
    Path(target).write_bytes(tflite_model.pack(model))
    return Path(target)
