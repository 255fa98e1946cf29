"""Letterbox (against libdarknet), its inverse, head decoding and NMS on hand-made data."""
import cv2
import numpy as np
import pytest

from conftest import sample_paths
from utils.testing import darknet_reference as darknet_ref
from utils.yolo.decode import decode
from utils.yolo.letterbox import Preprocessor, letterbox_float, resize_image
from utils.yolo.meta import Head, YoloMeta, default_masks
from utils.yolo.nms import iou_matrix, nms, overlapping_pairs
from utils.yolo.types import Detections, HeadOutput, Letterbox


def literal_resize(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """A line-by-line port of Darknet's resize_image (float32), slow but obviously faithful."""
    im = image.astype(np.float32)
    H, W, _ = im.shape
    w_scale, h_scale = np.float32(W - 1) / np.float32(w - 1), np.float32(H - 1) / np.float32(h - 1)
    part = np.zeros((H, w, im.shape[2]), np.float32)
    for c in range(w):
        if c == w - 1 or W == 1:
            part[:, c] = im[:, W - 1]
        else:
            sx = np.float32(c) * w_scale
            ix = int(sx)
            dx = np.float32(sx - np.float32(ix))
            part[:, c] = (np.float32(1) - dx) * im[:, ix] + dx * im[:, ix + 1]
    out = np.zeros((h, w, im.shape[2]), np.float32)
    for r in range(h):
        sy = np.float32(r) * h_scale
        iy = int(sy)
        dy = np.float32(sy - np.float32(iy))
        out[r] = (np.float32(1) - dy) * part[iy]
        if r == h - 1 or H == 1:
            continue
        out[r] += dy * part[iy + 1]
    return out


@pytest.mark.parametrize("size", [(416, 312), (100, 77), (777, 600), (31, 400)])
def test_resize_is_darknets(size):
    image = cv2.imread(str(sample_paths()[0]))
    assert np.abs(resize_image(image, size) - literal_resize(image[..., ::-1], *size)).max() < 1e-3


@pytest.mark.skipif(not darknet_ref.available(), reason="Debian's darknet is not installed")
@pytest.mark.parametrize("net_size", [(416, 416), (608, 352), (320, 480)])
def test_letterbox_matches_libdarknet(net_size, weights, tiny_cfg):
    net = darknet_ref.Darknet(tiny_cfg, weights)
    for path in sample_paths():  # their sizes include both of Darknet's edge quirks (see _Resizer)
        image = cv2.imread(str(path))
        for im in (image, np.ascontiguousarray(image.transpose(1, 0, 2))):  # landscape and portrait
            reference = net.letterbox(im[..., ::-1].astype(np.float32) / 255, net_size)
            assert np.abs(letterbox_float(im, net_size)[0] - reference).max() <= 1 / 255 / 100
            scale = np.float32(1 / 255)  # what the converter writes
            expected = np.round(reference / scale)
            for dtype, zero_point in ((np.uint8, 0), (np.int8, -128)):
                quantized, _ = Preprocessor(net_size, dtype, scale, zero_point)(im)
                levels = quantized[0].astype(np.float32) - zero_point
                assert np.abs(levels - expected).max() <= 1  # the bound: 1/255
                assert (levels != expected).mean() < 1e-3   # in fact only float ties differ


@pytest.mark.skipif(not darknet_ref.available(), reason="Debian's darknet is not installed")
@pytest.mark.parametrize("net_size", [(416, 416), (608, 352)])
def test_stretch_matches_libdarknet(net_size, weights, tiny_cfg):
    """The stretch input is libdarknet's resize_image to the network size, as the forks feed it."""
    net = darknet_ref.Darknet(tiny_cfg, weights)
    for path in sample_paths():
        image = cv2.imread(str(path))
        for im in (image, np.ascontiguousarray(image.transpose(1, 0, 2))):
            reference = net.stretch(im[..., ::-1].astype(np.float32) / 255, net_size)
            assert np.abs(letterbox_float(im, net_size, "stretch")[0] - reference).max() <= 1 / 255 / 100
            quantized, box = Preprocessor(net_size, np.uint8, np.float32(1 / 255), 0, resize="stretch")(im)
            assert np.abs(quantized[0].astype(np.float32) - np.round(reference * 255)).max() <= 1
            assert box == Letterbox(box.image_size, net_size, net_size, (0, 0))


def test_stretch_geometry_scales_each_axis():
    box = Letterbox.fit((1000, 250), (416, 416), "stretch")
    assert (box.new_size, box.offset) == ((416, 416), (0, 0))
    back = box.to_image(np.array([[0.5, 0.5, 0.25, 0.5]], np.float32))[0]
    assert np.allclose(back, [375, 62.5, 625, 187.5])
    with pytest.raises(ValueError, match="unknown resize mode 'squash'"):
        Preprocessor((416, 416), resize="squash")


def test_preprocessor_reused_across_image_shapes():
    """A video or a directory reuses one Preprocessor: a new shape must not leave the old one behind."""
    image = cv2.imread(str(sample_paths()[0]))
    portrait = np.ascontiguousarray(image.transpose(1, 0, 2))
    for dtype, scale in ((np.float32, 0.0), (np.uint8, 1 / 255)):
        reused = Preprocessor((416, 416), dtype, scale)
        reused(image)
        assert np.array_equal(reused(portrait)[0], Preprocessor((416, 416), dtype, scale)(portrait)[0])
        assert np.array_equal(reused(image)[0], Preprocessor((416, 416), dtype, scale)(image)[0])


@pytest.mark.parametrize("image_size, new_size, offset", [((768, 576), (416, 312), (0, 52)),
                                                          ((576, 768), (312, 416), (52, 0)),
                                                          ((640, 480), (416, 312), (0, 52))])
def test_letterbox_fit(image_size, new_size, offset):
    box = Letterbox.fit(image_size, (416, 416))
    assert box.new_size == new_size and box.offset == offset


@pytest.mark.parametrize("image_size", [(768, 576), (576, 768)])
def test_boxes_map_back_through_the_letterbox(image_size):
    box = Letterbox.fit(image_size, (416, 416))
    (new_w, new_h), (w, h) = box.new_size, image_size
    # A box drawn on the image, expressed on the network canvas, must come back unchanged.
    x1, y1, x2, y2 = 0.1 * w, 0.2 * h, 0.6 * w, 0.9 * h
    sx, sy = new_w / w, new_h / h
    cx, cy = ((x1 + x2) / 2 * sx + (416 - new_w) / 2) / 416, ((y1 + y2) / 2 * sy + (416 - new_h) / 2) / 416
    bw, bh = (x2 - x1) * sx / 416, (y2 - y1) * sy / 416
    back = box.to_image(np.array([[cx, cy, bw, bh]], np.float32))[0]
    assert np.allclose(back, [x1, y1, x2, y2], atol=0.01)


def make_meta(classes=3):
    return YoloMeta((416, 416), classes, [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)],
                    [Head([3, 4, 5], (13, 13)), Head([0, 1, 2], (26, 26))])


def test_decode_hand_made_head():
    meta = make_meta()
    big = np.full((1, 13, 13, 3 * 8), -10, np.float32)
    small = np.full((1, 26, 26, 3 * 8), -10, np.float32)
    # cell row 4, col 6, anchor 1 (anchor index 4: 135x169): tx=ty=0, tw=th=0, objectness 0.9, class 2 at 0.8
    cell = big[0, 4, 6, 8:16]
    cell[:4] = 0
    cell[4] = np.log(0.9 / 0.1)
    cell[5 + 2] = np.log(0.8 / 0.2)
    box = Letterbox.fit((416, 416), (416, 416))
    found = decode([HeadOutput(big), HeadOutput(small)], meta, box, 0.25)
    assert len(found) == 1 and found.class_ids[0] == 2
    assert found.scores[0] == pytest.approx(0.72, abs=1e-5)
    cx, cy = (6.5 / 13) * 416, (4.5 / 13) * 416
    assert np.allclose(found.boxes[0], [cx - 67.5, cy - 84.5, cx + 67.5, cy + 84.5], atol=1e-3)
    # The same head quantized (scale 0.1, zero point 128) decodes to the same detection.
    quantized = np.clip(np.round(big / 0.1 + 128), 0, 255).astype(np.uint8)
    found_q = decode([HeadOutput(quantized, 0.1, 128), HeadOutput(small)], meta, box, 0.25)
    assert found_q.class_ids.tolist() == [2] and abs(found_q.scores[0] - 0.72) < 0.02


def test_decode_keeps_every_class_over_threshold_and_scale_x_y():
    meta = make_meta()
    meta.heads[0].scale_x_y = 1.05
    big = np.full((1, 13, 13, 24), -10, np.float32)
    big[0, 0, 0, :4] = [np.log(4), 0, 0, 0]  # sigmoid(tx) = 0.8
    big[0, 0, 0, 4] = 5
    big[0, 0, 0, 5:8] = [2, 2, -5]
    found = decode([HeadOutput(big), HeadOutput(np.full((1, 26, 26, 24), -10, np.float32))], meta,
                   Letterbox.fit((416, 416), (416, 416)), 0.25)
    assert sorted(found.class_ids.tolist()) == [0, 1]
    expected_cx = (0 + 0.8 * 1.05 - 0.025) / 13 * 416  # not 0.8 / 13 * 416
    assert (found.boxes[0, 0] + found.boxes[0, 2]) / 2 == pytest.approx(expected_cx, abs=1e-3)


def dets(boxes, scores, classes):
    return Detections(np.array(boxes, np.float32), np.array(scores, np.float32), np.array(classes))


def test_nms_is_per_class():
    found = nms(dets([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], [0.9, 0.8, 0.7], [0, 1, 0]))
    assert sorted(zip(found.class_ids.tolist(), [round(float(s), 2) for s in found.scores])) == [(0, 0.9), (1, 0.8)]


def test_nms_disjoint_and_identical_boxes():
    assert len(nms(dets([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 9]], [0.5, 0.6, 0.7], [0, 0, 0]))) == 3
    same = nms(dets([[0, 0, 10, 10]] * 4, [0.3, 0.9, 0.5, 0.7], [1] * 4))
    assert same.scores.tolist() == [pytest.approx(0.9)]


def test_nms_greedy_chain():
    # b suppresses c only if b is kept; a suppresses b, so c survives (Darknet's greedy order).
    found = nms(dets([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.9, 0.8, 0.7], [0, 0, 0]), 0.3)
    assert [round(float(s), 2) for s in found.scores] == [0.9, 0.7]


def test_box_both_car_and_truck():
    found = nms(dets([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 10, 10]], [0.6, 0.5, 0.4], [2, 7, 2]))
    assert sorted(found.class_ids.tolist()) == [2, 7]


def test_clip_and_default_masks():
    clipped = dets([[-5, -5, 500, 300]], [0.5], [0]).clipped((400, 200))
    assert clipped.boxes.tolist() == [[0, 0, 400, 200]]
    assert default_masks(6, [(13, 13), (26, 26)]) == [[3, 4, 5], [0, 1, 2]]
    assert default_masks(9, [(52, 52), (13, 13), (26, 26)]) == [[0, 1, 2], [6, 7, 8], [3, 4, 5]]


def darknet_nms(d: Detections, threshold: float, kind: str, beta: float, size) -> list[int]:
    """Darknet's do_nms_sort / diounms_sort loops, transcribed (box.c): per class, by score, each
    box still kept suppresses the later ones; DIoU in image-relative coordinates."""
    width, height = size
    scale = np.array([width, height, width, height], np.float64)
    kept = []
    for k in np.unique(d.class_ids):
        members = [i for i in np.argsort(-d.scores, kind="stable") if d.class_ids[i] == k]
        alive = dict.fromkeys(members, True)
        for position, i in enumerate(members):
            if not alive[i]:
                continue
            kept.append(int(i))
            a = d.boxes[i] / scale
            for j in members[position + 1:]:
                b = d.boxes[j] / scale
                inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                value = inter / union if union > 0 else 0
                if kind == "diou":
                    c = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
                    if c > 0:
                        value -= ((((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2) ** 2).sum() / c) ** beta
                if value > threshold:
                    alive[j] = False
    return sorted(kept)


@pytest.mark.parametrize("kind", ["iou", "diou"])
def test_nms_equals_darknets_loops(kind):
    rng = np.random.default_rng(0)
    for trial in range(24):  # half of them under nms.SMALL (all pairs at once), half the sweep
        count = int(rng.integers(2, 65) if trial % 2 else rng.integers(65, 1200))
        centres = rng.uniform([0, 0], [640, 480], (count, 2))
        sizes = rng.uniform(10, 200, (count, 2))
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)
        d = dets(boxes, rng.uniform(0.25, 1, count), rng.integers(0, 3, count))
        threshold = float(rng.choice([0.3, 0.45, 0.7]))
        found = nms(d, threshold, kind, 0.6, (640, 480))
        index = {(tuple(b), float(s), int(c)): i for i, (b, s, c) in enumerate(zip(d.boxes.tolist(), d.scores, d.class_ids))}
        ours = sorted(index[(tuple(b), float(s), int(c))] for b, s, c in zip(found.boxes.tolist(), found.scores, found.class_ids))
        assert ours == darknet_nms(d, threshold, kind, 0.6, (640, 480)), (trial, kind)
        assert np.all(np.diff(found.scores) <= 0)


def test_overlapping_pairs_equal_the_full_matrix():
    """The pairs the fidelity report matches, found by sweeping, against every pair measured."""
    rng = np.random.default_rng(1)
    for trial in range(16):
        counts = rng.integers(0, 60, 2) if trial % 2 else rng.integers(500, 3000, 2)
        sets = []
        for count in counts:
            centres = rng.uniform([0, 0], [640, 480], (count, 2))
            sizes = rng.uniform(1, 300, (count, 2))
            sets.append(np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).astype(np.float32))
        shared = min(counts) // 4  # jittered copies: IoUs near the thresholds
        sets[1][:shared] = sets[0][:shared] + rng.normal(0, 3, (shared, 4)).astype(np.float32)
        for threshold in (0.5, 0.9):
            i, j = overlapping_pairs(sets[0], sets[1], threshold)
            expected = np.argwhere(iou_matrix(sets[0], sets[1]) >= threshold)
            assert sorted(zip(i.tolist(), j.tolist())) == sorted(map(tuple, expected.tolist())), (trial, threshold)


def test_diou_nms_keeps_what_iou_nms_drops():
    # IoU 7/13 = 0.54 > 0.45; the DIoU penalty (9/269)^0.6 = 0.13 brings it to 0.41 < 0.45.
    pair = dets([[0, 0, 10, 10], [3, 0, 13, 10]], [0.9, 0.8], [0, 0])
    assert len(nms(pair, 0.45, "iou", image_size=(100, 100))) == 1
    assert len(nms(pair, 0.45, "diou", 0.6, (100, 100))) == 2
    # A larger exponent shrinks the penalty: (9/269)^6 is nothing, so DIoU suppresses too.
    assert len(nms(pair, 0.45, "diou", 6.0, (100, 100))) == 1
    # The penalty is measured relative to the image, as Darknet does: in a 100x10 image the shift
    # is small against the (mostly vertical) diagonal, (0.0009/1.0169)^0.6 = 0.015, so DIoU suppresses.
    assert len(nms(pair, 0.45, "diou", 0.6, (100, 10))) == 1
