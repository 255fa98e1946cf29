"""Darknet models: cfg parser, weights reader, Keras builder, conversion, libdarknet reference, weights fetcher."""
