// The kernel table: one sub-table per op family, each declared and filled by its family
// (cpp/src/<family>/<family>_kernels.hpp/.cpp: reference kernels first, then the overrides of
// each ISA level up to the table's). One table per ISA, built once; kernels() is the active
// one (see set_isa() in cnnkit/runtime.hpp). Baseline code only: ISA files include just their
// family's header.
#pragma once

#include "activation/activation_kernels.hpp"
#include "conv/conv_kernels.hpp"
#include "dropout/dropout_kernels.hpp"
#include "gemm/gemm_kernels.hpp"
#include "loss/loss_kernels.hpp"
#include "norm/norm_kernels.hpp"
#include "pool/pool_kernels.hpp"
#include "runtime/peak_kernels.hpp"

namespace cnnkit {

struct KernelTable {
  GemmKernels gemm;
  ConvKernels conv;
  PoolKernels pool;
  ActivationKernels activation;
  NormKernels norm;
  DropoutKernels dropout;
  LossKernels loss;
  PeakKernels peak;
};

// The active ISA's table: best_isa(), CNNKIT_ISA or set_isa()'s choice.
const KernelTable& kernels();

}  // namespace cnnkit
