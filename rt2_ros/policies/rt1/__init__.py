"""RT-1 (Brohan et al. 2022): FiLM-EfficientNet + TokenLearner + causal Transformer over a
frame history, one token per action dimension over the project's RT-2 codec.

Importing :mod:`rt2_ros.policies.rt1.registration` registers ``RT1Config`` / ``RT1Model``
with transformers' ``AutoConfig`` / ``AutoModel`` (no remote code). This package file
imports no torch.
"""
