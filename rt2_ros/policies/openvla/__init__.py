"""Native OpenVLA: ``openvla/openvla-7b``-layout checkpoints on transformers' own modules.

No ``trust_remote_code`` and no timm. The checkpoint's upstream weights
(``prismatic/extern/hf/modeling_prismatic.py`` at openvla commit c8f03f4) are
mapped onto:

* the vision towers: ``Dinov2WithRegistersModel`` (DINOv2 with registers) and
  ``SiglipVisionModel``, described by timm id in :mod:`.towers`; patch features
  come from the **second-to-last** block, as upstream;
* the projector: the 3-layer (fused towers) or 2-layer GELU MLP (:mod:`.modeling`);
* the language model: ``LlamaForCausalLM`` (``AutoModelForCausalLM`` of
  ``text_config.model_type``).

Modules:

* :mod:`.config`: ``config.json`` of an OpenVLA checkpoint (torch-free).
* :mod:`.towers`: tower architectures by timm id (torch-free).
* :mod:`.keymap`: upstream parameter names <-> transformers' module names.
* :mod:`.processing`: upstream's image preprocessing and prompt (PIL + numpy).
* :mod:`.modeling`: the native model, its loader and writer (torch).

Importing this package imports no torch.
"""
