"""The inference application: the loop, outputs, status line and live view that inference.py and library users share."""
