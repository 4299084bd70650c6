"""tfvgs: learning spoken words by drawing images (TensorFlow/Keras reproduction of Suris et al., CVPR 2019).

Also the `--setup_file` for Beam on Dataflow: workers install this package and its install_requires.
TensorFlow is chosen by the TFVGS_TENSORFLOW environment variable at install time because `tensorflow-cpu` and
`tensorflow[and-cuda]` both provide the `tensorflow` module and cannot be installed side by side:
    pip install -e .[dev]                                            # CPU wheel (default; Dataflow workers)
    TFVGS_TENSORFLOW='tensorflow[and-cuda]==2.21.*' pip install -e .  # NVIDIA GPUs
"""
import os

from setuptools import find_packages, setup

TENSORFLOW = os.environ.get("TFVGS_TENSORFLOW", "tensorflow-cpu==2.21.*")

setup(
    name="tfvgs",
    version="0.1.0",
    description="Learning words by drawing images: GAN-edited hard negatives for visually grounded speech",
    long_description=open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")).read()
    if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")) else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfvgs", "tfvgs.*", "beam_pipelines", "beam_pipelines.*", "export", "export.*"]),
    install_requires=[
        TENSORFLOW,
        "keras>=3.10",
        "apache-beam[tfrecord]>=2.60",
        "google-crc32c>=1.5",
        "tensorboard>=2.20",
        "numpy>=1.26",
        "scipy>=1.11",
        "pillow>=10",
        "matplotlib>=3.8",
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]==2.21.*"],  # only with TFVGS_TENSORFLOW set likewise, see above
        "dev": ["pytest>=8"],
    },
    entry_points={"console_scripts": ["tfvgs-train=tfvgs.train:main"]},
)
