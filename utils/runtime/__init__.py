"""Running models, YOLO-free: interpreters and kernels, Edge TPU delegate and devices, Keras engine, pool, pipeline."""
