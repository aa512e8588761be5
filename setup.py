import platform
from setuptools import find_packages, setup


def read_version_file():
    namespace = {}
    with open('mmdet_scconv/version.py') as f:
        exec(f.read(), namespace)
    return namespace


# The CPU kernels (mmdet_scconv/csrc) are built once per instruction set, each
# into its own module, with the flags torch builds its own kernels with;
# mmdet_scconv.layers.kernels.cpu imports the one torch picks for this CPU.
CPU_CAPABILITY_FLAGS = {'DEFAULT': []}
if platform.machine().lower() in ('x86_64', 'amd64'):
    CPU_CAPABILITY_FLAGS.update(
        AVX2=['-mavx2', '-mfma', '-mf16c'],
        AVX512=[
            '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mfma',
            '-mf16c'
        ])

CPU_KERNEL_SOURCES = [
    f'mmdet_scconv/csrc/{name}.cpp'
    for name in ('module', 'sru_inference_cpu', 'cru_fuse_cpu')
]


def cpu_extensions():
    """The compiled CPU kernels and the command that builds them; they are
    built against the installed torch, so torch must come first and the
    install must not isolate the build: ``pip install --no-build-isolation
    -e .`` (what tools/install.sh runs)."""
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        raise SystemExit(
            'mmdet-scconv compiles its CPU kernels against torch, which is '
            'not importable here. Install torch first, then run pip install '
            '--no-build-isolation -e . (tools/install.sh does both).')
    extensions = [
        CppExtension(
            f'mmdet_scconv._cpu_{capability.lower()}',
            CPU_KERNEL_SOURCES,
            extra_compile_args=[
                '-O3', '-g0', '-fopenmp', f'-DCPU_CAPABILITY={capability}',
                f'-DCPU_CAPABILITY_{capability}'
            ] + flags,
            extra_link_args=['-fopenmp'])
        for capability, flags in CPU_CAPABILITY_FLAGS.items()
    ]
    return extensions, {'build_ext': BuildExtension}


extensions, commands = cpu_extensions()
version_file = read_version_file()
setup(
    name='mmdet-scconv',
    version=version_file['__version__'],
    description='SCConv (CVPR 2023) for MMDetection: faithful and fast',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdet_scconv', 'mmdet_scconv.*']),
    ext_modules=extensions,
    cmdclass=commands,
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
