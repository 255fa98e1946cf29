"""Measuring detectors: labelled datasets, mAP metrics, the evaluation runner and the int8 fidelity report."""
