"""TensorFlow Lite flatbuffers: the schema fields this toolkit reads and writes, and the model file reader/editor."""
