"""Training, ONNX conversion with a parity guard, and model-store I/O for the credit-risk model."""
