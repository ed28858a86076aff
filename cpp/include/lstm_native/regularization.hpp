// Regularization inside the fused passes: dropout, variational recurrent dropout, zoneout and weight-drop.
//
// In training (forward_training and backward) each regularizer draws its masks from a counter-based
// generator (Philox4x32-10) keyed by `seed`: a mask element is a function of (seed, regularizer, its
// indices) alone, so a run is reproducible, the masks do not depend on the thread count, and backward
// redraws exactly the masks its forward drew. Inference (forward_inference, forward_step) applies no
// dropout and the expectation of zoneout.
//
//   dropout            x_t ⊙ m_x / (1-p)        m_x [B,I]: one mask per sequence, reused at every step
//                                               (variational, Gal & Ghahramani 2016)
//   recurrent_dropout  (h_{t-1} ⊙ m_h / (1-p)) U in z_t only, m_h [B,H] per sequence (variational); the
//                                               carried state h is not dropped
//   zoneout_h, _c      h_t = d_h ⊙ h_{t-1} + (1-d_h) ⊙ h̃_t, c_t = d_c ⊙ c_{t-1} + (1-d_c) ⊙ c̃_t, where
//                                               c̃_t, h̃_t are the cell's new values; d ~ Bernoulli(z) per
//                                               step, unit and sequence; at inference d = z (Krueger et
//                                               al. 2016). The output gate peeks at c̃_t ("current").
//   weight_drop        U ⊙ M_U / (1-p)          one DropConnect mask on U per call (Merity et al. 2017)
//
// Rates lie in [0, 1); masks are drawn at a resolution of 2^-16. With a projection (CellConfig::
// projection_size = P), m_h is [B,P] and M_U [P,4H]; zoneout is not defined there (std::invalid_argument).
#pragma once

#include <array>
#include <cstdint>

namespace lstm_native {

struct Regularization {
  double dropout = 0.0;
  double recurrent_dropout = 0.0;
  double zoneout_h = 0.0;
  double zoneout_c = 0.0;
  double weight_drop = 0.0;
  std::uint64_t seed = 0;

  bool zoneout() const { return zoneout_h > 0.0 || zoneout_c > 0.0; }
};

// Throws std::invalid_argument naming the rate unless every rate lies in [0, 1).
void validate(const Regularization& regularization);

// The generator behind every mask: Philox4x32-10 (Salmon et al. 2011). Element e of a mask stream s
// (1 input dropout, 2 recurrent dropout, 3 zoneout h, 4 zoneout c, 5 weight-drop) takes the 16-bit lane
// e mod 8 of philox4x32_10({e/8 low, e/8 high, s, 0}, {seed low, seed high}); it is dropped (zoned out)
// when that value is below round(rate·65536). Element indices: input [b,i] → b·I+i, recurrent [b,j] → b·Ho+j,
// zoneout [t,b,j] → (t·B+b)·H+j, weight-drop [r,k] → r·4H+k (Ho: the size of h).
std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> counter, std::array<std::uint32_t, 2> key);

}  // namespace lstm_native
