"""lmms-eval integration: the savi_video model, the savi_* video QA tasks, their registration and data.

Kept free of imports: ``savi_plugin.eval.registration`` runs at interpreter start (see its docstring).
"""
