"""Cameras on 127.0.0.1 for the stream tests and the soak benchmark: an HTTP MJPEG server and
GStreamer's RTSP server, each serving a video file. Not used by the scripts."""
