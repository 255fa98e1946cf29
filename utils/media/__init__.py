"""Frames in and out: images, frames, image and video sinks, video files, cameras, network streams."""
