// The core's passes under the sanitizers (tests/cpp/sanitize.sh builds this with -fsanitize=address,undefined):
// forward (inference and training), backward and forward_step of every peephole variant and output-peephole
// source, float and double, with and without masks (including fully masked sequences), with
// zero_output_for_mask, with every regularization, on 1 and 2 threads; a finite-difference check of backward;
// and the error paths (bad shapes, a short workspace, bad rates, overflowing sizes), which must throw
// std::invalid_argument. Prints "core_checks: N checks passed" and exits 0, or names the failed check.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <lstm_native/backward.hpp>
#include <lstm_native/forward.hpp>
#include <lstm_native/threads.hpp>

using namespace lstm_native;

namespace {

int checks = 0;

void check(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    std::fprintf(stderr, "core_checks: FAILED: %s\n", what.c_str());
    std::exit(1);
  }
}

template <class T>
bool all_finite(const std::vector<T>& v) {
  for (T x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

void expect_invalid(const std::function<void()>& call, const std::string& what) {
  try {
    call();
  } catch (const std::invalid_argument& error) {
    check(std::string(error.what()).size() > 5, what + ": message");
    return;
  }
  check(false, what + ": did not throw std::invalid_argument");
}

template <class T>
struct Problem {
  CellConfig config;
  std::int64_t B, T_, I, H;
  std::vector<T> x, W, U, b, p, h0, c0;
  std::vector<std::uint8_t> mask;

  Problem(Peephole peephole, OutputPeepholeSource source, bool masked, bool zero_output, unsigned seed,
          std::int64_t B_ = 3, std::int64_t T__ = 5, std::int64_t I_ = 4, std::int64_t H_ = 3)
      : B(B_), T_(T__), I(I_), H(H_) {
    config.input_size = I;
    config.hidden_size = H;
    config.peephole = peephole;
    config.output_peephole_source = source;
    config.zero_output_for_mask = zero_output;
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal(0.0, 0.5);
    auto fill = [&](std::vector<T>& v, std::int64_t n) {
      v.resize(n);
      for (T& e : v) e = static_cast<T>(normal(rng));
    };
    fill(x, B * T_ * I);
    fill(W, I * 4 * H);
    fill(U, H * 4 * H);
    fill(b, 4 * H);
    const std::vector<std::int64_t> ps = peephole_shape(config);
    std::int64_t pn = 1;
    for (auto d : ps) pn *= d;
    if (!ps.empty()) fill(p, pn);
    fill(h0, B * H);
    fill(c0, B * H);
    if (masked) {
      mask.assign(B * T_, 1);
      for (std::int64_t t = 0; t < T_; ++t) mask[0 * T_ + t] = 0;          // a fully masked sequence
      for (std::int64_t t = 2; t < T_; ++t) mask[1 * T_ + t] = 0;          // right padding
      if (B > 2) mask[2 * T_ + 0] = 0, mask[2 * T_ + 3 % T_] = 0;         // holes
    }
  }
  Weights<T> weights() const {
    return {{W.data(), {I, 4 * H}}, {U.data(), {H, 4 * H}}, {b.data(), {4 * H}},
            p.empty() ? Tensor<const T>() : Tensor<const T>(p.data(), peephole_shape(config))};
  }
  SequenceInput<T> input() const {
    return {{x.data(), {B, T_, I}}, {h0.data(), {B, H}}, {c0.data(), {B, H}},
            mask.empty() ? Tensor<const std::uint8_t>() : Tensor<const std::uint8_t>(mask.data(), {B, T_})};
  }
};

template <class T>
struct Outputs {
  std::vector<T> y, h, c;
  Outputs(std::int64_t B, std::int64_t T_, std::int64_t H) : y(B * T_ * H), h(B * H), c(B * H) {}
  SequenceOutput<T> view(std::int64_t B, std::int64_t T_, std::int64_t H) {
    return {{y.data(), {B, T_, H}}, {h.data(), {B, H}}, {c.data(), {B, H}}};
  }
};

// forward (both kinds), backward and step of one problem; returns the loss sum(y) + sum(h) + sum(c) of
// the training forward, for the finite-difference check.
template <class T>
double run_problem(const Problem<T>& pr, const Regularization& reg, const std::string& name, bool with_backward,
                   std::vector<T>* dW_out = nullptr) {
  const std::int64_t B = pr.B, T_ = pr.T_, I = pr.I, H = pr.H;
  Outputs<T> inf(B, T_, H), tr(B, T_, H);
  forward_inference<T>(pr.config, pr.weights(), pr.input(), inf.view(B, T_, H), reg);
  check(all_finite(inf.y) && all_finite(inf.h) && all_finite(inf.c), name + ": inference outputs finite");
  const std::int64_t ws_size = training_workspace_size(pr.config, B, T_, reg);
  std::vector<T> ws(ws_size);
  forward_training<T>(pr.config, pr.weights(), pr.input(), tr.view(B, T_, H), {ws.data(), ws_size}, reg);
  check(all_finite(tr.y) && all_finite(tr.h) && all_finite(tr.c), name + ": training outputs finite");
  const bool stochastic = reg.dropout > 0 || reg.recurrent_dropout > 0 || reg.weight_drop > 0 || reg.zoneout();
  if (!stochastic) {
    double diff = 0;
    for (std::size_t k = 0; k < inf.y.size(); ++k) diff = std::max(diff, double(std::fabs(inf.y[k] - tr.y[k])));
    check(diff < 1e-5, name + ": training forward equals inference forward");
  }
  double loss = 0;
  for (T v : tr.y) loss += v;
  for (T v : tr.h) loss += v;
  for (T v : tr.c) loss += v;
  if (with_backward) {
    std::vector<T> ones_y(B * T_ * H, T(1)), ones_h(B * H, T(1));
    std::vector<T> dx(B * T_ * I), dh0(B * H), dc0(B * H), dW(I * 4 * H), dU(H * 4 * H), db(4 * H), dp(pr.p.size());
    const Gradients<T> grads{{dx.data(), {B, T_, I}}, {dh0.data(), {B, H}}, {dc0.data(), {B, H}},
                             {dW.data(), {I, 4 * H}}, {dU.data(), {H, 4 * H}}, {db.data(), {4 * H}},
                             pr.p.empty() ? Tensor<T>() : Tensor<T>(dp.data(), peephole_shape(pr.config))};
    const OutputGradients<T> gout{{ones_y.data(), {B, T_, H}}, {ones_h.data(), {B, H}}, {ones_h.data(), {B, H}}};
    backward<T>(pr.config, pr.weights(), pr.input().mask, B, T_, gout, {ws.data(), ws_size}, grads, reg);
    check(all_finite(dx) && all_finite(dh0) && all_finite(dc0) && all_finite(dW) && all_finite(dU) &&
              all_finite(db) && all_finite(dp),
          name + ": gradients finite");
    if (dW_out) *dW_out = dW;
    // a workspace one element short is refused
    if (ws_size > 0) {
      expect_invalid([&] {
        backward<T>(pr.config, pr.weights(), pr.input().mask, B, T_, gout, {ws.data(), ws_size - 1}, grads, reg);
      }, name + ": short workspace in backward");
      expect_invalid([&] {
        forward_training<T>(pr.config, pr.weights(), pr.input(), tr.view(B, T_, H), {ws.data(), ws_size - 1}, reg);
      }, name + ": short workspace in forward");
    }
  }
  // one step from h0, c0 equals the first step of the sequence (unmasked, no zoneout)
  std::vector<T> h1(B * H), c1(B * H);
  std::vector<T> x0(B * I);
  for (std::int64_t r = 0; r < B; ++r)
    for (std::int64_t k = 0; k < I; ++k) x0[r * I + k] = pr.x[(r * T_) * I + k];
  Regularization step_reg;
  step_reg.zoneout_h = reg.zoneout_h;
  step_reg.zoneout_c = reg.zoneout_c;
  forward_step<T>(pr.config, pr.weights(), {x0.data(), {B, I}}, {pr.h0.data(), {B, H}}, {pr.c0.data(), {B, H}},
                  {h1.data(), {B, H}}, {c1.data(), {B, H}}, step_reg);
  check(all_finite(h1) && all_finite(c1), name + ": step outputs finite");
  if (pr.mask.empty()) {
    double diff = 0;
    for (std::int64_t r = 0; r < B; ++r)
      for (std::int64_t j = 0; j < H; ++j) diff = std::max(diff, double(std::fabs(h1[r * H + j] - inf.y[(r * T_) * H + j])));
    check(diff < 1e-5, name + ": forward_step equals the first step");
  }
  return loss;
}

template <class T>
void variants(const char* type) {
  const Peephole peepholes[] = {Peephole::None, Peephole::Diagonal, Peephole::Full};
  const OutputPeepholeSource sources[] = {OutputPeepholeSource::Current, OutputPeepholeSource::Previous};
  std::vector<Regularization> regs(4);
  regs[1].dropout = 0.3, regs[1].recurrent_dropout = 0.2, regs[1].seed = 7;
  regs[2].zoneout_h = 0.2, regs[2].zoneout_c = 0.4, regs[2].seed = 11;
  regs[3].dropout = 0.5, regs[3].recurrent_dropout = 0.5, regs[3].zoneout_h = 0.1, regs[3].zoneout_c = 0.1,
  regs[3].weight_drop = 0.5, regs[3].seed = ~std::uint64_t(0);
  unsigned seed = 1;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (Peephole ph : peepholes)
      for (OutputPeepholeSource src : sources)
        for (bool masked : {false, true})
          for (bool zero_output : {false, true})
            for (std::size_t r = 0; r < regs.size(); ++r) {
              const std::string name = std::string(type) + " " + to_string(ph) + "/" + to_string(src) +
                                       (masked ? " masked" : "") + (zero_output ? " zero-output" : "") + " reg" +
                                       std::to_string(r) + " threads=" + std::to_string(threads);
              const Problem<T> pr(ph, src, masked, zero_output, seed++, 3 + (r % 2) * 5, 5, 4, 3 + threads);
              run_problem(pr, regs[r], name, true);
            }
  }
  set_num_threads(1);
}

// d(loss)/dW by central differences equals backward's dW (double, every variant, masked).
void gradient_check() {
  for (Peephole ph : {Peephole::None, Peephole::Diagonal, Peephole::Full})
    for (OutputPeepholeSource src : {OutputPeepholeSource::Current, OutputPeepholeSource::Previous}) {
      Problem<double> pr(ph, src, true, false, 99, 3, 4, 2, 2);
      std::vector<double> dW;
      run_problem(pr, {}, "gradient check", true, &dW);
      double worst = 0;
      for (std::size_t k = 0; k < pr.W.size(); ++k) {
        const double w = pr.W[k], eps = 1e-6;
        pr.W[k] = w + eps;
        const double up = run_problem(pr, {}, "gradient check +", false);
        pr.W[k] = w - eps;
        const double down = run_problem(pr, {}, "gradient check -", false);
        pr.W[k] = w;
        worst = std::max(worst, std::fabs((up - down) / (2 * eps) - dW[k]));
      }
      check(worst < 1e-6, std::string("finite differences of dW, ") + to_string(ph) + "/" + to_string(src) +
                              ": worst error " + std::to_string(worst));
    }
}

void error_paths() {
  Problem<float> pr(Peephole::Diagonal, OutputPeepholeSource::Current, false, false, 5);
  const std::int64_t B = pr.B, T_ = pr.T_, H = pr.H;
  Outputs<float> out(B, T_, H);
  auto run_with = [&](auto mutate, const std::string& what) {
    expect_invalid([&] {
      Problem<float> bad = pr;
      Weights<float> w = bad.weights();
      SequenceInput<float> in = bad.input();
      Regularization reg;
      mutate(w, in, reg);
      forward_inference<float>(bad.config, w, in, out.view(B, T_, H), reg);
    }, what);
  };
  run_with([](Weights<float>& w, SequenceInput<float>&, Regularization&) { w.W.shape = {5, 12}; }, "W of another I");
  run_with([](Weights<float>& w, SequenceInput<float>&, Regularization&) { w.U.shape = {3, 11}; }, "U not [H, 4H]");
  run_with([](Weights<float>& w, SequenceInput<float>&, Regularization&) { w.b.shape = {11}; }, "b of another size");
  run_with([](Weights<float>& w, SequenceInput<float>&, Regularization&) { w.peephole = {}; }, "peephole missing");
  run_with([](Weights<float>& w, SequenceInput<float>&, Regularization&) { w.peephole.shape = {3, 3, 3}; },
           "peephole of the wrong shape");
  run_with([](Weights<float>&, SequenceInput<float>& in, Regularization&) { in.x.shape = {3, 5}; }, "x of rank 2");
  run_with([](Weights<float>&, SequenceInput<float>& in, Regularization&) { in.x.shape = {0, 5, 4}; }, "B = 0");
  run_with([](Weights<float>&, SequenceInput<float>& in, Regularization&) { in.x.shape = {3, 0, 4}; }, "T = 0");
  run_with([](Weights<float>&, SequenceInput<float>& in, Regularization&) { in.h0.shape = {2, 3}; }, "h0 of another B");
  run_with([](Weights<float>&, SequenceInput<float>& in, Regularization&) { in.c0.shape = {3, 4}; }, "c0 of another H");
  run_with([](Weights<float>&, SequenceInput<float>& in, Regularization&) {
    static std::vector<std::uint8_t> m(15, 1);
    in.mask = {m.data(), {3, 4}};
  }, "mask of another T");
  run_with([](Weights<float>&, SequenceInput<float>&, Regularization& r) { r.zoneout_h = 1.0; }, "zoneout 1");
  run_with([](Weights<float>&, SequenceInput<float>&, Regularization& r) { r.zoneout_c = std::nan(""); }, "zoneout NaN");
  run_with([](Weights<float>&, SequenceInput<float>&, Regularization& r) { r.dropout = -0.1; }, "dropout < 0");
  expect_invalid([] { parse_peephole("bogus"); }, "parse_peephole");
  expect_invalid([] { parse_output_peephole_source("past"); }, "parse_output_peephole_source");
  expect_invalid([] { set_num_threads(0); }, "set_num_threads(0)");
  expect_invalid([&] { training_workspace_size(pr.config, std::int64_t(1) << 40, std::int64_t(1) << 40); },
                 "a workspace size that overflows");
  expect_invalid([&] { training_workspace_size(pr.config, -1, 5); }, "negative batch");
  expect_invalid([&] {
    config_from_shapes({4, 12}, {3, 11}, Peephole::Diagonal, OutputPeepholeSource::Current, false);
  }, "config_from_shapes with U not [H, 4H]");
  expect_invalid([&] {
    config_from_shapes({4, std::numeric_limits<std::int64_t>::max() - 3}, {std::numeric_limits<std::int64_t>::max() / 4,
                       std::numeric_limits<std::int64_t>::max() - 3}, Peephole::Full, OutputPeepholeSource::Current,
                       false);
    // a config this large is fine as shapes; what it needs must not overflow silently
    CellConfig big = config_from_shapes({4, 4 * (std::int64_t(1) << 40)}, {std::int64_t(1) << 40, 4 * (std::int64_t(1) << 40)},
                                        Peephole::Full, OutputPeepholeSource::Current, false);
    training_workspace_size(big, std::int64_t(1) << 20, std::int64_t(1) << 20);
  }, "huge sizes");
}

}  // namespace

int main() {
  try {
    variants<float>("float");
    variants<double>("double");
    gradient_check();
    error_paths();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "core_checks: unexpected exception: %s\n", error.what());
    return 1;
  }
  std::printf("core_checks: %d checks passed\n", checks);
  return 0;
}
