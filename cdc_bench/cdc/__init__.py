"""CDC (Yang & Mandt, NeurIPS 2023) re-implemented: networks, schedules, sampler, checkpoint loading, entropy
coding and the codec adapter. Import the submodules directly (`cdc_bench.cdc.model`, `.sampler`, ...); this
file imports none of them, so `import cdc_bench.cdc.releases` (weights listing) does not build any network.
"""
