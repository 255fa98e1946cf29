"""cfg parsing and weights reading: exact layout, and clear errors for files that do not fit."""

import numpy as np
import pytest

from conftest import MODEL_DATA
from utils.darknet.cfg import conv_layouts, layer_channels, parse_cfg, parse_cfg_text
from utils.darknet.weights import header_size, read_weights, write_weights
from utils.errors import UserError


@pytest.mark.parametrize("name, convs, heads", [("yolov3-tiny", 13, 2), ("yolov3", 75, 3),
                                                ("yolov3-spp", 76, 3), ("yolov4-tiny", 21, 2)])
def test_parses_supported_cfgs(name, convs, heads):
    sections = parse_cfg(MODEL_DATA / f"{name}.cfg")
    assert len(conv_layouts(sections)) == convs
    assert sum(s.kind == "yolo" for s in sections) == heads


def test_real_tiny_weights_are_consumed_exactly(weights, tiny_cfg):
    layouts = conv_layouts(parse_cfg(tiny_cfg))
    convs = read_weights(weights, layouts)
    assert convs[0].kernel.shape == (3, 3, 3, 16)
    assert convs[-1].bn_scale is None and convs[-1].bias.shape == (255,)
    assert sum(layout.float_count() for layout in layouts) * 4 + 20 == weights.stat().st_size


def test_header_forms():
    assert header_size(0, 2) == 20 and header_size(0, 1) == 16 and header_size(1000, 2) == 16


def test_route_groups_halve_channels():
    sections = parse_cfg(MODEL_DATA / "yolov4-tiny.cfg")
    channels = layer_channels(sections)
    route = next(i for i, s in enumerate(sections[1:]) if s.kind == "route" and "groups" in s.options)
    assert channels[route] == channels[route - 1] // 2


@pytest.mark.parametrize("text, fragment", [
    ("[net]\n[convolutional]\nfilters=8\n[bogus]\n[yolo]\n", "line 4: unknown section [bogus]"),
    ("[net]\n[convolutional]\nfilters=eight\n[yolo]\n", "line 3: [convolutional] option 'filters=eight' is not an integer"),
    ("[net]\n[convolutional]\nfilters=8\nactivation=swishy\n[yolo]\n", "'activation=swishy' is not one of"),
    ("[net]\nwidth 416\n[yolo]\n", "line 2: expected 'key=value'"),
    ("[convolutional]\n[yolo]\n", "the first section must be [net]"),
    # What hank-ai/darknet's tiny cfgs hold that this converter refuses (bench/cfg_survey.py lists them):
    ("[net]\n[convolutional]\nfilters=8\n[region]\n", "line 4: unknown section [region]"),
    ("[net]\n[convolutional]\nfilters=8\nxnor=1\n[yolo]\n", "line 4: [convolutional] option 'xnor' is not supported"),
    ("[net]\n[crnn]\n[yolo]\n", "line 2: unknown section [crnn]"),
    ("[net]\n[local_avgpool]\n[yolo]\n", "line 2: unknown section [local_avgpool]"),
])
def test_cfg_errors_name_the_line(text, fragment):
    with pytest.raises(UserError) as error:
        sections = parse_cfg_text(text, "cfg test.cfg")
        conv_layouts(sections)
    assert fragment in str(error.value)


def _tiny_layouts(tiny_cfg):
    return conv_layouts(parse_cfg(tiny_cfg))


def test_truncated_weights_name_the_layer(tmp_path, tiny_cfg):
    layouts = _tiny_layouts(tiny_cfg)
    path = tmp_path / "w.weights"
    write_weights(path, layouts, np.random.default_rng(0))
    path.write_bytes(path.read_bytes()[:-4000])
    with pytest.raises(UserError, match=r"floats run out at layer 22 \(\[convolutional\] on cfg line"):
        read_weights(path, layouts)


def test_extra_floats_are_counted(tmp_path, tiny_cfg):
    layouts = _tiny_layouts(tiny_cfg)
    path = tmp_path / "w.weights"
    write_weights(path, layouts, np.random.default_rng(0))
    path.write_bytes(path.read_bytes() + b"\0" * 40)
    with pytest.raises(UserError, match="10 floats left over"):
        read_weights(path, layouts)


# The resize each model in model_data/ was trained with, by the cfg alone and with a weights file of
# each Darknet's header (0.2.0: Darknet 2018; 0.2.5: AlexeyAB's and Hank.ai's).
RESIZE_VERDICTS = {
    "yolov3-tiny": ("letterbox", "classic cfg"),
    "yolov3": ("letterbox", "classic cfg"),
    "yolov3-spp": ("letterbox", "classic cfg"),
    "yolov3-tiny-prn": ("letterbox", "classic cfg"),
    "yolov4-tiny": ("stretch", "[route] groups"),
    "yolov4-tiny-3l": ("stretch", "[route] groups"),
    "yolov7-tiny": ("stretch", "[yolo] scale_x_y"),
}


@pytest.mark.parametrize("name", sorted(RESIZE_VERDICTS))
def test_resize_rule_for_every_cfg_in_model_data(name, tmp_path):
    from utils.darknet.resize_rule import resize_mode
    sections = parse_cfg(MODEL_DATA / f"{name}.cfg")
    mode, why = resize_mode(sections)
    assert (mode, RESIZE_VERDICTS[name][1] in why) == (RESIZE_VERDICTS[name][0], True), why
    for revision, expected in ((0, mode), (5, "stretch")):
        path = tmp_path / f"{name}-{revision}.weights"
        path.write_bytes(np.array([0, 2, revision], np.int32).tobytes() + bytes(8))
        found, because = resize_mode(sections, path)
        assert found == expected
        assert f"header 0.2.{revision}" in because or mode == "stretch"  # a fork's option speaks first


@pytest.mark.parametrize("value, mode", [("1", "letterbox"), ("0", "stretch")])
def test_letter_box_in_the_cfg_decides_before_anything_else(value, mode, tmp_path):
    from utils.darknet.resize_rule import resize_mode
    sections = parse_cfg_text((MODEL_DATA / "yolov4-tiny.cfg").read_text().replace("[net]", f"[net]\nletter_box={value}"),
                              "cfg v4.cfg")
    path = tmp_path / "fork.weights"
    path.write_bytes(np.array([0, 2, 5], np.int32).tobytes() + bytes(8))
    assert resize_mode(sections, path) == (mode, f"cfg v4.cfg line 2: [net] letter_box={value}")


def test_letter_box_must_be_0_or_1():
    with pytest.raises(UserError, match=r"line 2: \[net\] option 'letter_box=2' is not 0 or 1"):
        parse_cfg_text((MODEL_DATA / "yolov3-tiny.cfg").read_text().replace("[net]", "[net]\nletter_box=2"),
                       "cfg t.cfg")
