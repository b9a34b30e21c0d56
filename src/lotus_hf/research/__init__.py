"""The research harness that measured lotus-hf, beside the product and outside its public API: the presets
and recipes that train originals and retrained gold standards (`lotus-hf train`), the benchmark against
retraining and the baselines (`lotus-hf benchmark`), and its plots. Scripts under benchmarks/ drive it.
"""
