"""Seeing the data and the training: ``savi inspect`` builds a static HTML site of preference pairs (frames,
perturbed frames, tagged phrases, per-pair training diagnostics) and ``savi plot`` draws training curves."""
