"""``python -m utils.fidelity``, the command's documented name; the code is ``utils.evaluation.fidelity``."""
from utils.errors import run_cli
from utils.evaluation.fidelity import main

if __name__ == "__main__":
    run_cli(main)
