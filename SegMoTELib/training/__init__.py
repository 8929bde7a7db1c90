"""Adapter training: prompt simulation (`prompts`), losses (`losses`), paired 2D datasets
(`datasets`), evaluation-set loaders (`evalsets`) and the training loop (`trainer`).

Nothing is imported here on purpose: `prompts`, `datasets` and `evalsets` are numpy-only and
must stay importable without torch; `losses` and `trainer` import torch.
"""
