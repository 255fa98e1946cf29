"""evaluate.py and its metrics: answers known by hand, COCO against pycocotools itself, Darknet
datasets as Darknet lays them out, and the round trip inference.py --save-txt -> evaluate.py."""
from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest

from conftest import MODEL_DATA, assert_user_error, run_in_process, run_script, sample_paths
from utils.evaluation import datasets, metrics
from utils.testing.figures import png_size
from utils.yolo.types import Detections

pytest.importorskip("pycocotools")


def found(boxes, scores, classes) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(classes, np.int64))


def truth(boxes, classes, crowd=None):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return boxes, np.array(classes, np.int64), np.array(crowd or [False] * len(boxes), bool)


A, B = [10, 10, 50, 50], [100, 100, 160, 140]


def score(truths, detections, classes=3):
    return metrics.evaluate(truths, detections, classes)


def test_perfect_detections_score_one():
    result = score([truth([A, B], [0, 1])], [found([A, B], [0.9, 0.8], [0, 1])])
    assert result.map50 == 1.0 and result.totals() == (1.0, 1.0, 1.0)


def test_one_missed_object_of_two_gives_half():
    result = score([truth([A, B], [0, 0])], [found([A], [0.9], [0])])
    assert result.map50 == 0.5
    assert (result.classes[0].precision, result.classes[0].recall) == (1.0, 0.5)


def test_a_box_shifted_below_iou_half_is_a_false_positive():
    shifted = [30, 10, 70, 50]  # IoU with A: 20x40 / (2 * 1600 - 800) = 1/3
    result = score([truth([A], [0])], [found([shifted], [0.9], [0])])
    assert result.map50 == 0.0 and result.classes[0].false_positives == 1


def test_a_duplicate_is_a_false_positive_ranked_by_score():
    # 0.9 on A (TP), 0.8 on A again (FP: A is taken), 0.7 on B (TP):
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3.
    result = score([truth([A, B], [0, 0])], [found([A, A, B], [0.9, 0.8, 0.7], [0, 0, 0])])
    assert result.map50 == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert result.classes[0].true_positives == 2 and result.classes[0].false_positives == 1


def test_a_detection_of_a_class_without_truth_is_a_false_positive_in_the_totals():
    # person.jpg with a false 'sheep 0.27': Darknet's detector map counts it, P = 5/6.
    people = [[10 + 60 * i, 10, 50 + 60 * i, 90] for i in range(5)]
    result = score([truth(people, [0] * 5)], [found(people + [B], [0.9] * 5 + [0.27], [0] * 5 + [2])])
    precision, recall, _ = result.totals()
    assert precision == pytest.approx(5 / 6) and recall == 1.0
    assert result.other_class_false_positives == 1 and result.map50 == 1.0  # AP only of classes with truth
    below = score([truth(people, [0] * 5)], [found(people + [B], [0.9] * 5 + [0.2], [0] * 5 + [2])])
    assert below.totals()[0] == 1.0  # under the threshold it is not counted


def test_no_label_file_for_any_image_is_said_and_exits_1(tmp_path, model_factory):
    image = tmp_path / "dog.jpg"
    image.write_bytes((MODEL_DATA / "samples" / "dog.jpg").read_bytes())
    result = run_script("evaluate.py", "--model", str(model_factory("tiny_keep_int8", [], [])), "--classes",
                        str(MODEL_DATA / "coco.names"), "--images", str(image))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("evaluate.py: nothing evaluated: no label file for any image")


def test_the_best_truth_taken_is_a_false_positive_as_in_darknet():
    """Darknet matches a detection to its highest-IoU truth only; if that one is taken, it is a false
    positive even when another truth overlaps it by more than 0.5."""
    a2 = [10, 10, 50, 56]
    detection = [10, 10, 50, 52]  # IoU 0.95 with A, 0.93 with a2
    result = score([truth([A, a2], [0, 0])], [found([A, detection], [0.9, 0.8], [0, 0])])
    assert result.map50 == 0.5


def test_several_classes_average_over_classes_with_truth():
    result = score([truth([A, B], [0, 2])], [found([A], [0.9], [0])], classes=80)
    assert [c.class_id for c in result.classes] == [0, 2]
    assert result.map50 == 0.5 and result.map50_all_classes == pytest.approx(1 / 80)


def test_detections_across_images_are_ranked_together():
    # Two objects (A in image 1, B in image 2). Image 1: an FP at 0.95; image 2: B found at 0.9.
    # Ranked together: precision 0 then 1/2, recall 0 then 1/2 -> AP = 1/2 * 1/2.
    result = score([truth([A], [0]), truth([B], [0])], [found([B], [0.95], [0]), found([B], [0.9], [0])])
    assert result.map50 == pytest.approx(0.25)


def test_coco_figure_equals_pycocotools_on_the_same_data(tmp_path):
    """A COCO file with COCO's own category ids and a crowd region, read by datasets.coco_truths and
    scored by metrics.coco_map, against pycocotools run on the file and the detections directly."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    rng = np.random.default_rng(3)
    names = [line for line in (MODEL_DATA / "coco.names").read_text().splitlines() if line]
    category = {"person": 1, "bicycle": 2, "car": 3, "dog": 18}
    images, annotations, detections, ours = [], [], [], []
    for image_id in (7, 9, 12):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        for k in range(4):
            name = list(category)[k % 4]
            x, y, w, h = [float(v) for v in rng.uniform([0, 0, 20, 20], [500, 380, 140, 100])]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category[name],
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(k == 3 and image_id == 9)})
            for _ in range(3):
                jitter = rng.normal(0, 8, 4)
                detections.append({"image_id": image_id, "category_id": category[name],
                                   "bbox": [x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3]],
                                   "score": float(rng.uniform(0.01, 1))})
    (tmp_path / "instances.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in category.items()] + [{"id": 90, "name": "toothbrush2"}]}))
    truths, unknown, zero_area = datasets.coco_truths(tmp_path / "instances.json", tmp_path, names)
    assert unknown == ["toothbrush2"]
    for entry in images:
        mine = [d for d in detections if d["image_id"] == entry["id"]]
        ours.append(found([[d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]
                           for d in mine], [d["score"] for d in mine],
                          [names.index(next(n for n, i in category.items() if i == d["category_id"])) for d in mine]))
    arrays = [(t.in_pixels(640, 480), t.class_ids, t.crowd) for t in truths]
    figure = metrics.coco_map(arrays, ours, [(640, 480)] * 3)
    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO(str(tmp_path / "instances.json"))
        evaluation = COCOeval(ground, ground.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert 0.2 < figure < 1 and figure == pytest.approx(evaluation.stats[0], abs=1e-9)


# ---- Darknet datasets ----------------------------------------------------------------------------

def test_labels_are_found_where_darknet_looks(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "labels").mkdir()
    image = tmp_path / "data" / "images" / "a.JPG"
    (tmp_path / "data" / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert datasets.label_path(image) == tmp_path / "data" / "labels" / "a.txt"
    beside = tmp_path / "b.jpg"
    assert datasets.label_path(beside) == tmp_path / "b.txt"


@pytest.mark.parametrize("line, fragments", [
    ("80 0.5 0.5 0.1 0.1", ("a.txt:2", "class 80 is beyond the 80 class names")),
    ("-1 0.5 0.5 0.1 0.1", ("a.txt:2", "class -1")),
    ("3 1.5 0.5 0.1 0.1", ("a.txt:2", "out of range")),
    ("3 0.5 0.5 -0.1 0.1", ("a.txt:2", "out of range")),
    ("3 0.5 0.5 0.1", ("a.txt:2", "expected 5 numbers")),
    ("dog 0.5 0.5 0.1 0.1", ("a.txt:2", "numbers")),
])
def test_bad_labels_are_one_line_naming_file_and_line(tmp_path, line, fragments):
    shutil.copy(MODEL_DATA / "samples" / "dog.jpg", tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("\ufeff1 0.5 0.5 0.2 0.2\r\n" + line + "\n")
    result = run_script("evaluate.py", "--model", "m.tflite", "--classes", str(MODEL_DATA / "coco.names"),
                        "--images", str(tmp_path))
    assert_user_error(result, *fragments)


GOOD_COCO = {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 18, "name": "dog"}],
             "annotations": [{"id": 7, "image_id": 1, "category_id": 18, "bbox": [10, 20, 30, 40]}]}


def broken(path: list, value) -> dict:
    """GOOD_COCO with the field at ``path`` replaced by ``value`` (deleted when value is ...)."""
    data = json.loads(json.dumps(GOOD_COCO))
    holder = data
    for key in path[:-1]:
        holder = holder[key]
    if value is ...:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return data


@pytest.mark.parametrize("data, fragments", [
    (broken(["annotations", 0, "bbox"], ...), ("annotation 0 (id 7)", "no 'bbox'")),
    (broken(["annotations", 0, "bbox"], [1, 2, 3]), ("annotation 0 (id 7)", "'bbox' must be 4 numbers")),
    (broken(["annotations", 0, "bbox"], [1, 2, "3", 4]), ("annotation 0 (id 7)", "'bbox' must be 4 numbers")),
    (broken(["annotations", 0, "bbox"], [1, 2, -3, 4]), ("annotation 0 (id 7)", "negative")),
    (broken(["annotations", 0, "bbox"], "10 20 30 40"), ("annotation 0 (id 7)", "'bbox'", "not list")),
    (broken(["annotations", 0, "image_id"], 99), ("annotation 0 (id 7)", "image_id 99 is not in 'images'")),
    (broken(["annotations", 0, "category_id"], "18"), ("annotation 0 (id 7)", "'category_id'", "not int")),
    (broken(["annotations", 0, "category_id"], 5), ("annotation 0 (id 7)", "category_id 5 is not in 'categories'")),
    (broken(["annotations", 0, "iscrowd"], 2), ("annotation 0 (id 7)", "'iscrowd' is 2")),
    (broken(["annotations", 0, "id"], ...) | {"annotations": [{"image_id": 1, "category_id": 18}]},
     ("annotation 0:", "no 'bbox'")),
    (broken(["annotations"], {"0": 1}), ("'annotations' is not a list",)),
    (broken(["images", 0, "file_name"], ...), ("image 0", "no 'file_name'")),
    (broken(["images", 0, "id"], "1"), ("image 0", "'id'", "not int")),
    (broken(["categories", 0, "name"], 3), ("category 0", "'name'", "not str")),
    (broken(["categories"], ...), ("not a COCO instances file",)),
    ([GOOD_COCO], ("not a COCO instances file",)),
])
def test_coco_files_are_checked_field_by_field(tmp_path, data, fragments):
    """Every field evaluate.py uses, with its type and length: one line naming the annotation, exit 2."""
    shutil.copy(MODEL_DATA / "samples" / "dog.jpg", tmp_path / "a.jpg")
    (tmp_path / "instances.json").write_text(json.dumps(data))
    result = run_in_process(["evaluate.py", "--model", "m.tflite", "--classes", str(MODEL_DATA / "coco.names"),
                             "--coco", "instances.json", "--images", "."], tmp_path)
    assert_user_error(result, "instances.json", *fragments)


def test_zero_area_boxes_are_left_out_alike_in_both_formats(tmp_path):
    """One rule for label files and COCO files: a box of zero width or height can never be matched,
    so it is left out of the ground truth and counted; a negative one is an error."""
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0 0.1\n1 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0\n")
    class_ids, boxes, zero_area = datasets.read_labels(tmp_path / "a.txt", 80)
    assert class_ids.tolist() == [1] and zero_area == 2
    data = broken(["annotations"], [{"id": 1, "image_id": 1, "category_id": 18, "bbox": [10, 20, 0, 40]},
                                    {"id": 2, "image_id": 1, "category_id": 18, "bbox": [10, 20, 30, 40]}])
    (tmp_path / "instances.json").write_text(json.dumps(data))
    truths, _, zero_area = datasets.coco_truths(tmp_path / "instances.json", tmp_path, ["person", "dog"])
    assert len(truths[0].class_ids) == 1 and zero_area == 1


def test_the_table_counts_one_object_as_one_object():
    from utils.evaluation.runner import Evaluation, Run, format_table

    class Named:  # the table reads only a run's label and result
        pass
    result = score([truth([A, B], [0, 2]), truth([A], [2])], [found([A], [0.9], [0]), found([A], [0.8], [2])], classes=3)
    result.map50_95 = 0.5
    table = format_table(Evaluation([Run("m.tflite", Named(), [], result)], 2, [], 0, 3), ["person", "car", "dog"], 0.25)
    rows = {line.split()[0]: line for line in table.splitlines() if line.startswith("  ")}
    assert " 1 object  " in rows["person"] and " 2 objects " in rows["dog"], table


def test_help():
    result = run_script("evaluate.py", "--help")
    assert result.returncode == 0 and "--reference" in result.stdout and "--kernels" in result.stdout


# ---- end to end, real model ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def float_model(model_factory):
    return model_factory("tiny_keep_float", quant_args=["--float"])


@pytest.mark.slow
def test_own_labels_score_one_and_bad_inputs_are_counted(tmp_path, float_model):
    """--save-txt of the float model, read back by evaluate.py from a Darknet layout (images/ and
    labels/, a .data file with valid= and names=): mAP 1.0; a missing label file and an unreadable
    image are counted."""
    images = tmp_path / "set" / "images"
    images.mkdir(parents=True)
    for path in sample_paths():
        shutil.copy(path, images / path.name)
    names = str(MODEL_DATA / "coco.names")
    saved = run_script("inference.py", "--model", str(float_model), "--classes", names, "--image", str(images),
                       "--save-txt", str(tmp_path / "set" / "labels"), "--no-display")
    assert saved.returncode == 0, saved.stderr
    labels = sorted((tmp_path / "set" / "labels").iterdir())
    assert len(labels) == len(sample_paths()) and all(line.count(" ") == 4 for p in labels
                                                      for line in p.read_text().splitlines())
    (images / "extra.jpg").write_bytes((images / "dog.jpg").read_bytes())  # no label file: no objects
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "set" / "labels" / "broken.txt").write_text("")
    (tmp_path / "valid.txt").write_text("".join(f"set/images/{p.name}\n" for p in sorted(images.iterdir())))
    (tmp_path / "obj.data").write_text(f"classes = 80\nvalid = valid.txt\nnames = {names}\n")
    result = run_script("evaluate.py", "--model", str(float_model), "--data", str(tmp_path / "obj.data"), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["unreadable"] == 1 and report["unlabelled"] == 1 and report["images"] == len(labels) + 1
    model = report["models"][0]
    # extra.jpg (a copy of dog.jpg without labels) adds false positives ranked among the true ones
    assert model["map50"] < 1.0
    (images / "extra.jpg").unlink()
    (images / "broken.jpg").unlink()
    (tmp_path / "valid.txt").write_text("".join(f"set/images/{p.name}\n" for p in sorted(images.iterdir())))
    result = run_script("evaluate.py", "--model", str(float_model), "--data", str(tmp_path / "obj.data"), "--json")
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)["models"][0]
    assert model["map50"] == 1.0 and model["map50_95"] > 0.99
    assert {c["label"] for c in model["per_class"]} >= {"dog", "bicycle", "person", "horse"}
    assert all(0 <= c["precision"] <= 1 and 0 <= c["recall"] <= 1 for c in model["per_class"])
    # Which resize does the model want? Both, side by side: its own (letterbox) made these labels.
    both = run_script("evaluate.py", "--model", str(float_model), "--data", str(tmp_path / "obj.data"),
                      "--resize", "both", "--json", "--plots", str(tmp_path / "plots"))
    assert both.returncode == 0, both.stderr
    runs = {m["resize"]: m for m in json.loads(both.stdout)["models"]}
    assert runs["letterbox"]["map50"] == 1.0 and runs["stretch"]["map50_95"] < 0.9, runs
    assert both.stderr.count("warning: resize stretch overrides") == 1, both.stderr
    # The curve points: the area under each class's curve is its AP; the plots: one per run, one overlaid.
    for run in runs.values():
        for item in run["per_class"]:
            curve = item["curve"]
            area = sum((r - q) * p for r, q, p in zip(curve["recall"], [0, *curve["recall"]], curve["precision"]))
            assert area == pytest.approx(item["ap50"], abs=2e-4), item
    assert runs["letterbox"]["curve"]["recall"][-1] == 1.0 and runs["letterbox"]["curve"]["precision"][0] == 1.0
    panels = 1 + min(len(runs["letterbox"]["per_class"]), 11)
    size = (400 * min(panels, 4), 330 * -(-panels // 4))
    plots = sorted((tmp_path / "plots").iterdir())
    assert [p.name for p in plots] == ["pr_1_tiny_keep_float.png", "pr_2_tiny_keep_float.png", "pr_all_models.png"]
    assert all(png_size(p) == size for p in plots), [png_size(p) for p in plots]
    assert [line for line in both.stderr.splitlines() if line.startswith("wrote ")] == [f"wrote {p}" for p in plots]


@pytest.mark.slow
def test_agreement_and_kernel_spread(model_factory, float_model):
    int8 = model_factory("tiny_keep_int8", [], [])
    result = run_script("evaluate.py", "--model", str(int8), "--reference", str(float_model), "--classes",
                        str(MODEL_DATA / "coco.names"), "--images", *map(str, sample_paths()), "--kernels", "all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line for line in lines if line.startswith(str(int8))]
    assert [("xnnpack" in r, "builtin" in r, "reference" in r) for r in rows[:3]] == \
        [(True, False, False), (False, True, False), (False, False, True)]
    assert any("over 3 kernel sets" in line for line in lines)
    map50 = [float(r.split(")")[-1].split()[0]) for r in rows[:3]]
    assert all(0.8 <= value <= 1.0 for value in map50), rows


def test_the_curve_points_integrate_to_the_average_precision():
    rng = np.random.default_rng(5)
    for _ in range(20):
        hits = rng.random(40) < 0.6
        scores = np.sort(rng.random(40))[::-1]
        truths = int(hits.sum()) + int(rng.integers(0, 5))
        curve = metrics.pr_curve(hits, scores, truths)
        area = sum((r - q) * p for r, q, p in zip(curve["recall"], [0, *curve["recall"]], curve["precision"]))
        assert area == pytest.approx(metrics.average_precision(hits, truths), abs=1e-3)
        assert curve["score"] == sorted(curve["score"], reverse=True) and len(curve["recall"]) == hits.sum() + (not hits[-1])
    assert metrics.pr_curve(np.zeros(0, bool), np.zeros(0), 3) == {"recall": [], "precision": [], "score": []}
