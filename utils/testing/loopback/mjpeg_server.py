"""An HTTP MJPEG camera for the stream tests: serves a video file as multipart/x-mixed-replace.

    python -m utils.testing.loopback.mjpeg_server PORT VIDEO [FPS] [--loop]

Loopback only; runs until killed. Prints "ready" once listening.
"""
import itertools
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2


def frames(path: str) -> list[bytes]:
    capture, encoded = cv2.VideoCapture(path), []
    while True:
        ok, image = capture.read()
        if not ok:
            return encoded
        encoded.append(cv2.imencode(".jpg", image)[1].tobytes())


def main() -> None:
    port, video = int(sys.argv[1]), sys.argv[2]
    fps = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "--loop" else 25.0
    loop = "--loop" in sys.argv
    jpegs = frames(video)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for index in itertools.count() if loop else range(len(jpegs)):
                    jpeg = jpegs[index % len(jpegs)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                     + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                    time.sleep(1 / fps)
            except (BrokenPipeError, ConnectionResetError):
                return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
