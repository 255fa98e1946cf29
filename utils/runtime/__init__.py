"""Running models, YOLO-free: interpreters and kernels, Edge TPU delegate and devices, fault policy, Keras engine, pool, pipeline."""
