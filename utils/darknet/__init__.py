"""Darknet models: cfg parser, weights reader, Keras builder, conversion, resize rule, weights fetcher."""
