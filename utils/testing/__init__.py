"""Code for tests and benches only: the stand-in Edge TPU, libdarknet as a reference, loopback cameras."""
