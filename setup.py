from setuptools import find_packages, setup


def read_version_file():
    namespace = {}
    with open('mmdet_scconv/version.py') as f:
        exec(f.read(), namespace)
    return namespace


version_file = read_version_file()
setup(
    name='mmdet-scconv',
    version=version_file['__version__'],
    description='SCConv (CVPR 2023) for MMDetection: faithful and fast',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdet_scconv', 'mmdet_scconv.*']),
    python_requires='>=3.10',
    install_requires=[f"torch>={version_file['TORCH_REQUIRED']}"],
    extras_require={
        'mmdet': [
            'mmcv>=2.0.0rc4,<2.2.0', 'mmengine==0.10.7', 'mmdet==3.3.0',
            'pycocotools'
        ],
        # The style checks run with the tests (.ci/run), as in mmdet.
        'tests': [
            'pytest', 'pytest-timeout', 'flake8==7.5.0', 'isort==9.0.2',
            'yapf==0.43.0'
        ],
        # The GPU kernels; on the CPU the tests run them in Triton's
        # interpreter.
        'triton': ['triton>=3.0'],
        # ONNX export (tools/deployment/pytorch2onnx.py), ONNX Runtime and
        # OpenVINO; the export writes some nodes with torch.onnx.ops (torch
        # 2.8).
        'export': [
            'torch>=2.8', 'onnx>=1.17', 'onnxscript>=0.5', 'onnxruntime>=1.20',
            'openvino>=2024.6'
        ],
    },
    license='Apache-2.0',
)
