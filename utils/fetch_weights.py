"""``python -m utils.fetch_weights``, the command's documented name; the code is ``utils.darknet.fetch_weights``."""
from utils.darknet.fetch_weights import main
from utils.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
