"""savi-plugin: self-aligning video language models.

Implements VideoSAVi (Kulkarni & Fazli, arXiv 2412.00624: self-critique preference data) and RRPO
(Sarkar et al., arXiv 2504.12083: refined regularized preference optimisation) as a plugin for
transformers/peft training and lmms-eval. See docs/ARCHITECTURE.md for the layout.
"""

__version__ = "0.1.0"
