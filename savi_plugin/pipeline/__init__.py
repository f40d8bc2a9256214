"""Pipelines that chain the folders below: the demo and the iterative generate -> train -> eval loop."""
