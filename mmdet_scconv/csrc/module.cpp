// The compiled CPU kernels' Python module, built once per CPU capability
// (setup.py defines CPU_CAPABILITY and CPU_CAPABILITY_AVX2 / _AVX512 with
// the matching compiler flags), each into its own extension module, so that
// no code built for a wider instruction set is ever shared with a narrower
// build; Python imports the one the running CPU supports.
#include <torch/extension.h>

#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("sru_inference_out", &mmdet_scconv::sru_inference_out,
        "The SRU output for inference (fp32, CPU), written into out");
  m.def("sru_inference_pooled_out", &mmdet_scconv::sru_inference_pooled_out,
        "The same with the lower half pooled 2x2, into upper and lower");
  m.def("sru_squeeze_out", &mmdet_scconv::sru_squeeze_out,
        "The SRU output's halves through the CRU's squeeze convolutions "
        "(fp32, CPU), into z_up and z_low");
  m.def("cru_fuse_out", &mmdet_scconv::cru_fuse_out,
        "The CRU output after its grouped convolution (fp32, CPU), written "
        "into out");
}
