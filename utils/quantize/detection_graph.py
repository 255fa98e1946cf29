"""A YOLO Keras model ending in TFLite's ``TFLite_Detection_PostProcess`` (``--outputs detections``).

After the heads come the ops that turn them into what the op takes, all 8-bit and on the Edge TPU's
list (RESHAPE, STRIDED_SLICE, LOGISTIC, MUL, CONCATENATION): box encodings whose centre-size
decoding is Darknet's box formula (``utils.yolo.ssd_outputs``), and class scores
``sigmoid(objectness) * sigmoid(class)``, Darknet's product. A ``new_coords`` head (YOLOv7's) is
already logistic and sizes boxes by ``(2 v)^2``: its size encoding takes a LOG, which the Edge TPU
does not run, so that LOG and the few ops after it run on the CPU just before the op. The op itself
comes from the converter: a ``tf.function`` with ``experimental_implements`` is what TensorFlow's
object-detection exporter uses, and the converter replaces it by the real custom op.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np
from flatbuffers import flexbuffers

from utils.yolo.meta import YoloMeta
from utils.yolo.ssd_outputs import (
    ANCHOR_STEP,
    LOG_FLOOR,
    OP_NAME,
    OUTPUTS,
    SIZE_SCALE,
    PostProcess,
    encoding_constants,
)


def _implements(meta: YoloMeta, post: PostProcess) -> str:
    """The op's attributes: per-class ("regular") NMS, as Darknet's per-class greedy NMS."""
    attributes = {"max_detections": ("i", post.max_detections), "max_classes_per_detection": ("i", 1),
                  "detections_per_class": ("i", post.max_detections), "use_regular_nms": ("b", "true"),
                  "nms_score_threshold": ("f", post.score_threshold), "nms_iou_threshold": ("f", post.iou_threshold),
                  "y_scale": ("f", 1.0), "x_scale": ("f", 1.0), "h_scale": ("f", SIZE_SCALE),
                  "w_scale": ("f", SIZE_SCALE),
                  "num_classes": ("i", meta.classes)}
    return " ".join([f'name: "{OP_NAME}"'] + [f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}'
                                               for key, (kind, value) in attributes.items()])


def _size_encoding(tf, doubled, offsets: np.ndarray):
    """A new_coords head's size encoding from ``2 v`` (floored): ``SIZE_SCALE * 2 log(2 v) + offsets``."""
    return tf.math.log(doubled) * (2 * SIZE_SCALE) + tf.constant(offsets)


def _encoding(tf, xy, wh):
    """The op's box encoding, (y, x, h, w), from centres and sizes in (x, y) order."""
    return tf.concat([xy[..., 1:2], xy[..., 0:1], wh[..., 1:2], wh[..., 0:1]], -1)


def serving_function(model, meta: YoloMeta, post: PostProcess):
    """image ``[1, H, W, 3]`` float -> (boxes, classes, scores, count) through the op."""
    import tensorflow as tf
    anchors, multipliers, offsets, size_offsets = encoding_constants(meta)
    smallest = np.float32(np.exp(-LOG_FLOOR))
    all_logistic = all(head.new_coords for head in meta.heads)
    by_grid = {(int(o.shape[2]), int(o.shape[1])): i for i, o in enumerate(model.outputs)}
    sizes = [head.grid[0] * head.grid[1] * len(head.mask) for head in meta.heads]
    starts = np.cumsum([0] + sizes)

    @tf.function(experimental_implements=_implements(meta, post))
    def post_process(box_encodings, class_predictions, anchors):
        # The converter replaces this body by the op; these constants only give the outputs' types.
        return (tf.constant(0.0, name="boxes"), tf.constant(0.0, name="classes"), tf.constant(0.0, name="scores"),
                tf.constant(0.0, name="num_detections"))

    def serve(image):
        outputs = model(image, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        encodings, scores, centres, sizes_of_logistic = [], [], [], []
        for number, head in enumerate(meta.heads):
            raw = tf.reshape(outputs[by_grid[tuple(head.grid)]], (1, sizes[number], 5 + meta.classes))
            here = slice(starts[number], starts[number + 1])
            if head.new_coords:  # already logistic: x = v s - (s - 1) / 2, w = (2 v)^2 anchor
                xy = raw[..., 0:2] * tf.constant(multipliers[None, here]) + tf.constant(offsets[None, here])
                sizes_of_logistic.append(tf.maximum(2 * raw[..., 2:4], smallest))
                scores.append(raw[..., 4:5] * raw[..., 5:])
                if all_logistic:
                    centres.append(xy)
                    continue
                wh = _size_encoding(tf, sizes_of_logistic.pop(), size_offsets[None, here])
            else:
                xy = tf.sigmoid(raw[..., 0:2]) * tf.constant(multipliers[None, here]) + tf.constant(offsets[None, here])
                wh = raw[..., 2:4] * SIZE_SCALE + tf.constant(size_offsets[None, here])
                scores.append(tf.sigmoid(raw[..., 4:5]) * tf.sigmoid(raw[..., 5:]))
            encodings.append(_encoding(tf, xy, wh))
        if all_logistic:  # one LOG for every head, as late as possible: the Edge TPU runs all before it
            wh = _size_encoding(tf, tf.concat(sizes_of_logistic, 1), size_offsets[None])
            encodings = [_encoding(tf, tf.concat(centres, 1), wh)]
        return post_process(tf.concat(encodings, 1), tf.concat(scores, 1), tf.constant(anchors))
    return serve


@contextlib.contextmanager
def saved_model(model, meta: YoloMeta, post: PostProcess) -> Iterator[str]:
    """A SavedModel directory of the model with the op at its end (Keras' export keeps the weights
    as constants the converter can fold), removed afterwards."""
    import keras
    import tensorflow as tf
    directory = tempfile.mkdtemp(prefix="tinyyolo-detections-")
    try:
        net_w, net_h = meta.input_size
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", serving_function(model, meta, post),
                             input_signature=[tf.TensorSpec((1, net_h, net_w, 3), tf.float32)])
        with contextlib.redirect_stdout(io.StringIO()):
            archive.write_out(directory)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _is_op(model, op, name: str) -> bool:
    from utils.tflite.model import op_name
    code = model.operatorCodes[op.opcodeIndex]
    return (code.customCode or b"").decode() == name if name == OP_NAME else op_name(code) == name


def _quantize_opcode(model) -> int:
    from utils.tflite import model as tflite_model
    schema = tflite_model._schema()
    for index, code in enumerate(model.operatorCodes):
        if tflite_model.op_name(code) == "QUANTIZE":
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.QUANTIZE
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def finish(model) -> None:
    """Edit the converted ``schema.ModelT`` into what consumers read, as Coral's own SSD models are:

    - the op is fed uint8 box encodings and scores (its kernel dequantizes uint8 itself, not int8): the
      converter's DEQUANTIZE (float, off the Edge TPU) becomes a QUANTIZE from int8 to uint8 with the
      same scale (on the Edge TPU, as the model's input and output QUANTIZE ops are), and the
      anchors, which the kernel then reads as uint8 too, are stored so;
    - its options keep ``detections_per_class``, which the converter drops;
    - its outputs are the model's, in the order boxes, classes, scores, count, named so;
    - the signature is the one pycoral 2.0 reads by name (output_0 count, output_1 scores, output_2
      classes, output_3 boxes, as TensorFlow's object-detection exporter names them).
    """
    from utils.tflite import model as tflite_model
    schema = tflite_model._schema()
    graph = model.subgraphs[0]
    post = next(op for op in graph.operators if _is_op(model, op, OP_NAME))
    producers = {out: op for op in graph.operators for out in op.outputs}
    for slot in (0, 1):
        dequantize = producers.get(post.inputs[slot])
        if dequantize is None or not _is_op(model, dequantize, "DEQUANTIZE"):
            continue  # a float model: nothing to do
        source, target = graph.tensors[dequantize.inputs[0]], graph.tensors[dequantize.outputs[0]]
        dequantize.opcodeIndex = _quantize_opcode(model)
        dequantize.builtinOptionsType, dequantize.builtinOptions = 0, None
        target.type = schema.TensorType.UINT8
        target.quantization = schema.QuantizationParametersT()
        target.quantization.scale = np.array(source.quantization.scale, np.float32)
        offset = 128 if source.type == schema.TensorType.INT8 else 0
        target.quantization.zeroPoint = np.array(source.quantization.zeroPoint, np.int64) + offset
    anchors = graph.tensors[post.inputs[2]]
    if graph.tensors[post.inputs[0]].type == schema.TensorType.UINT8 and anchors.type == schema.TensorType.FLOAT32:
        # With uint8 encodings the kernel reads the anchors as uint8 too: they are multiples of 1/255.
        values = np.frombuffer(model.buffers[anchors.buffer].data.tobytes(), np.float32)
        model.buffers[anchors.buffer].data = np.round(values / ANCHOR_STEP).astype(np.uint8)
        anchors.type = schema.TensorType.UINT8
        anchors.quantization = schema.QuantizationParametersT()
        anchors.quantization.scale = np.array([ANCHOR_STEP], np.float32)
        anchors.quantization.zeroPoint = np.array([0])
    # The converter drops detections_per_class, and the kernel then keeps at most 100 per class.
    options = flexbuffers.Loads(bytes(post.customOptions))
    options["detections_per_class"] = options["max_detections"]
    post.customOptions = np.frombuffer(flexbuffers.Dumps(options), np.uint8)
    graph.outputs = np.array(post.outputs, np.int32)
    for index, name in zip(post.outputs, OUTPUTS):
        graph.tensors[index].name = name.encode()
    by_name = dict(zip(OUTPUTS, post.outputs))
    for signature in model.signatureDefs or []:
        for number, (entry, name) in enumerate(zip(signature.outputs, ("count", "scores", "classes", "boxes"))):
            entry.name, entry.tensorIndex = f"output_{number}".encode(), int(by_name[name])
