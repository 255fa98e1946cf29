"""``python -m utils.edgetpu_check``, the command's documented name; the code is ``utils.quantize.edgetpu_check``."""
from utils.errors import run_cli
from utils.quantize.edgetpu_check import main

if __name__ == "__main__":
    run_cli(main)
