"""Pipelines that chain the folders below: recipe-driven steps, the iterative generate -> train -> eval loop (its
dry run, its ranks under a launcher, its eval step) and the loss ablation."""
