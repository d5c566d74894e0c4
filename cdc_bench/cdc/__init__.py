"""CDC (Yang & Mandt, NeurIPS 2023) re-implemented: networks, schedules, sampler, checkpoint loading, entropy
coding and the codec adapter. Import the submodules directly (`cdc_bench.cdc.model`, `.sampler`, ...); this
package stays import-light so that `cdc-bench codecs` does not pay for torch models it does not use.
"""
