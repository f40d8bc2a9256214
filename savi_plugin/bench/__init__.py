"""Performance benchmarks, importable so that ``savi bench`` works from an installed package.

* :mod:`~savi_plugin.bench.train_step` -- RRPO step time and peak memory: our trainer (shared-prefix packing,
  vision once per pair, adapter-disabled reference, response-only LM head) against an official-style step
  (:mod:`~savi_plugin.bench.official_rrpo`) on a long video, at equal loss;
* :mod:`~savi_plugin.bench.trl_dpo` -- DPO seconds per pair against TRL's ``DPOTrainer``, at equal loss;
* :mod:`~savi_plugin.bench.decode` -- video decoding frames/s, decord against PyAV;
* :mod:`~savi_plugin.bench.measure` -- fresh-process peak-RSS and step-time measurement;
* :mod:`~savi_plugin.bench.fixtures` -- the locally built model, video, pair and LoRA adapter they share.

``benchmarks/*.py`` in the source tree are thin scripts over these modules; ``benchmarks/README.md`` has the
commands and the measured tables.
"""
