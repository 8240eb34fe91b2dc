"""cfbench's built-in samplers.

Each module holds one sampler plugin. They register under the entry-point group
``cfbench.samplers`` in ``pyproject.toml``, exactly as a third-party sampler package does;
cfbench's core never imports this package by name.
"""
