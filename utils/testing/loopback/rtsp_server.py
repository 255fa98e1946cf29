"""An RTSP camera for the stream tests: GStreamer's RTSP server playing a video file as H.264.

    /usr/bin/python3 utils/testing/loopback/rtsp_server.py PORT VIDEO

Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins (base, good,
ugly, libav); runs with the system Python. Loopback only; runs until killed. Prints "ready".
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, video = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( filesrc location={video} ! decodebin ! videoconvert ! "
                       "x264enc tune=zerolatency key-int-max=10 ! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
