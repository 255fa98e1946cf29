"""``python -m utils.quant_debug``, the command's documented name; the code is ``utils.quantize.debugger``."""
from utils.errors import run_cli
from utils.quantize.debugger import main

if __name__ == "__main__":
    run_cli(main)
