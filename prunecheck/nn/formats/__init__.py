"""Readers for the model file formats beyond a plain state dict.

- :mod:`~prunecheck.nn.formats.checkpoint`: ``torch.load(weights_only=True)`` with
  numpy scalars allowlisted, nested / prefixed checkpoints, safetensors files.
- :mod:`~prunecheck.nn.formats.exported`: ``torch.export`` programs (``.pt2``),
  with the archive checked before ``torch.export.load`` sees it.
- :mod:`~prunecheck.nn.formats.torch_pruning`: files written by Torch-Pruning's
  ``tp.state_dict`` (structurally pruned models).
- :mod:`~prunecheck.nn.formats.onnx`: ONNX files run by ONNX Runtime behind an
  ``nn.Module``, so the engine, cache and gates treat them like any model.

No reader here executes pickled code: a file that would need it is refused
with a message that names the file and what was found.
"""
