"""``inference.py`` as a library call: plan every input and output, load the detector, run the loop,
report how it went, and return the exit status."""
from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from utils.app import outputs as out
from utils.app.loop import Tally, detect_loop
from utils.app.status import FileProgress, LiveStatus
from utils.console import plural
from utils.errors import UserError
from utils.media import sinks, streams
from utils.media.frames import image_frames
from utils.media.images import find_image_entries
from utils.stopping import graceful_stop, signal_name
from utils.yolo.detector import Detector


@dataclass
class InferenceOptions:
    """The flags of ``inference.py`` (see its ``--help``); exactly one of ``cam``, ``image``, ``video``."""

    model: Path
    classes: Path | None = None
    threshold: float = 0.25
    iou: float | None = None
    nms: str | None = None
    resize: str | None = None
    anchors: Path | None = None
    edge_tpu: bool = False
    device: str | None = None
    quant: bool = False
    runtime: str = "auto"
    kernels: str | None = None
    threads: int | None = None
    cam: str | None = None
    image: list[str] = field(default_factory=list)
    video: str | None = None
    reconnect: int | None = None
    segment_minutes: float | None = None
    output: Path | None = None
    save_txt: Path | None = None
    json: bool = False
    display: bool = False
    serve: str | None = None          # [HOST:]PORT of the live view
    serve_token: str | None = None    # None: none on localhost, a new one beyond it


class Events:
    """Device and stream events: each one line on stderr, passed to the live view; ``faults`` counts
    the ones that are not a recovery (a device or a stream ``back after …``)."""

    def __init__(self):
        self.faults, self.listeners = 0, []

    def __call__(self, line: str) -> None:
        self.faults += ": back after " not in line
        print(line, file=sys.stderr, flush=True)
        for listener in self.listeners:
            listener(line)


def run(options: InferenceOptions) -> int:
    """Run inference as ``inference.py`` does; return its exit status (0, 1, or 128 + a stop signal).
    Bad input raises ``UserError`` before anything is loaded or written."""
    say = (lambda line: print(line, file=sys.stderr)) if options.json else print
    events = Events()
    # Every input is checked and every output planned (the live view's port bound) before loading.
    unreadable: list[Path] = []
    if options.image:
        entries = find_image_entries(options.image)
        paths = [path for path, _ in entries]
        source, frames_of = None, lambda stop: image_frames(paths, unreadable)
        outputs = _image_outputs(options, entries, say)
    else:
        source = streams.video_source(options.video) if options.video else streams.camera_source(options.cam)
        outputs = _video_outputs(options, source, say)
    view = None
    if options.serve is not None:
        from utils.app.serve import LiveView, parse_address

        view = LiveView(parse_address(options.serve), options.serve_token, source.name if source else "images")
        events.listeners.append(view.event)
        outputs.append(view)
    try:
        detector = load(options, events)
        with graceful_stop() as stop, detector:
            if view is not None:
                device = ("CPU" if not options.edge_tpu else f"Edge TPU {options.device}" if options.device
                          else "Edge TPU (the first found)")
                view.start(f"{Path(options.model).name} ({detector.engine.description})", device)
            if source is not None:
                video = streams.Stream(source, options.reconnect, on_event=events)
                fps_in, frame_count = video.properties()
                for output in outputs:
                    if isinstance(output, out.VideoFile):
                        output.fps = fps_in
                outputs.append(LiveStatus(source.name, lambda: events.faults) if source.live
                               else FileProgress(Path(source.name).name, frame_count))
                frames_of = video.frames
            if options.display and sinks.display_available():
                outputs.append(out.Window())
            tally = detect_loop(detector, frames_of(stop), outputs, stop, draw_fps=source is not None)
    finally:  # the loop closes every output; this is for a failure before it starts (a camera that does not open)
        if view is not None:
            view.close(False)
    return _report(options, tally, detector, stop, say, unreadable, paths if options.image else None,
                   video if source is not None else None, bool(options.output or options.save_txt))


def load(options: InferenceOptions, events: Events | None = None) -> Detector:
    detector = Detector(options.model, options.classes, options.threshold, options.iou, runtime=options.runtime,
                        kernels=options.kernels, threads=options.threads, edge_tpu=options.edge_tpu,
                        device=options.device, anchors=options.anchors, nms=options.nms,
                        reconnect=options.reconnect, resize=options.resize, on_event=events)
    if options.quant and not detector.engine.quantized:
        detector.close()
        raise UserError(f"--quant given, but model {options.model} has a float32 input: quantize it with "
                        "keras_to_tflite_quant.py or drop --quant")
    if detector.names is None:
        detector.close()
        raise UserError(f"model {options.model} holds no class names: give --classes FILE (names, one per line)")
    if options.edge_tpu and not detector.engine.compiled:
        print(f"warning: {options.model} is not compiled for the Edge TPU, so it runs on the CPU; compile it "
              "with edgetpu_compiler", file=sys.stderr)
    return detector


def _image_outputs(options: InferenceOptions, entries, say) -> list:
    outputs: list = [out.JsonLines()] if options.json else [out.ImageLines()]
    sources = [str(path) for path, _ in entries]
    if options.output:
        outputs.append(out.ImageFiles(dict(zip(sources, sinks.plan_image_outputs(entries, options.output))), say))
    if options.save_txt:
        planned = sinks.plan_label_outputs(entries, options.save_txt)
        outputs.append(out.LabelFiles(dict(zip(sources, planned)), options.save_txt, say))
    return outputs


def _video_outputs(options: InferenceOptions, source: streams.Source, say) -> list:
    outputs: list = [out.JsonLines()] if options.json else []
    if options.output:
        inputs = [Path(options.video)] if options.video and not source.live else []
        sink = (sinks.SegmentedVideoSink(options.output, 30.0, options.segment_minutes, inputs)
                if options.segment_minutes else sinks.VideoSink(options.output, 30.0, inputs))
        outputs.append(out.VideoFile(sink, say))
    return outputs


def _report(options: InferenceOptions, tally: Tally, detector: Detector, stop, say, unreadable: list[Path],
            paths: list[Path] | None, video: streams.Stream | None, writes: bool) -> int:
    """The closing lines and the exit status."""
    done = plural(tally.frames, "image" if paths is not None else "frame")
    if tally.device_lost:
        print(f"{tally.device_lost}; stopped after {done}" + (", the output is complete up to there" if writes
                                                            else "") + " (exit status 1)", file=sys.stderr)
        return 1
    if stop.is_set():
        said = "interrupted" if stop.signum in (None, signal.SIGINT) else f"stopped by {signal_name(stop.signum)}"
        print(f"{said} after {done}" + ("; the outputs are complete up to there" if writes else ""), file=sys.stderr)
        return 128 + (stop.signum or signal.SIGINT)  # 130, 143, 129: the line above says it, once
    if tally.frames:
        count = tally.frames
        once = f"; set-up, not counted: first invoke {detector.engine.warmup_ms:.1f} ms" + (
            f", resize graphs {tally.setup:.1f} ms" if tally.setup else "")
        say(f"{done}: pre {tally.pre / count:.2f} ms, invoke {tally.invoke / count:.2f} ms, post "
            f"{tally.post / count:.2f} ms per frame{once}; {count / tally.elapsed:.1f} FPS overall "
            f"({detector.engine.description}{', Edge TPU' if options.edge_tpu else ''}), {detector.meta.resize}")
    if paths is not None:
        if not tally.frames:
            raise UserError(f"image {paths[0]}: cannot be read as an image" if len(paths) == 1
                            else f"images: none of the {len(paths)} images could be read")
        summary = f"{plural(len(paths), 'image')}, {len(unreadable)} unreadable"
        if unreadable:
            print(f"{summary} (exit status 1)", file=sys.stderr)
            return 1
        if len(paths) > 1:
            say(summary)
    if video is not None and video.gave_up:
        print(f"{video.source.name}: the stream did not come back (exit status 1)", file=sys.stderr)
        return 1
    return 0
