"""The engine: the models livecell classifies with, their export, and the inference backends.

``livecell.engine.models`` defines the networks in plain torch (patch ResNets, a compact
ResNet for CPU real time, a CNN-LSTM for per-track sequences, an intermediate-fusion
encoder for several channels); ``livecell.engine.export`` turns a trained model into the
portable ONNX artefact (and a TensorRT engine where a GPU exists); and
``livecell.engine.backends`` runs that artefact behind one interface (ONNX Runtime by
default, torch, TensorRT, Triton). Training and export need torch; the daemon does not.
"""
