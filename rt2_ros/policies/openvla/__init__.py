"""Native OpenVLA: openvla-7b-layout checkpoints on transformers' own DINOv2/SigLIP/Llama modules (no remote code, no timm; imports no torch)."""
