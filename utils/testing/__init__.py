"""Code for tests and benches only: the stand-in Edge TPU, libdarknet as a reference, loopback cameras,
held-out image sets, the rounding experiments the quantizer does not ship (bias correction, fine-tuning)."""
