// Rotary position embedding (Su et al. 2021, RoFormer): config and position validation, the
// inverse-frequency schedules of HF transformers' modeling_rope_utils (default, linear, llama3, yarn),
// the `_ref` kernel (double, sequential) and autograd wiring. The op is linear in x, y = m R(pos) x,
// so the backward is m R(pos)^T g: the same kernel with the angle negated (fast one in ops/cpu/rope.cpp).
#include "lmlab/ops/rope.h"

#include <cmath>
#include <memory>
#include <vector>

#include "lmlab/ops/cpu/rope_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

constexpr double kPi = 3.14159265358979323846;

// ---- config validation; returns the effective rotary dim ----
int64_t check_rope_config(const RopeConfig& cfg) {
  LMLAB_CHECK(cfg.head_dim > 0, ConfigError, "[rope] head_dim must be positive, got ", cfg.head_dim);
  LMLAB_CHECK(cfg.rotary_dim >= 0, ConfigError, "[rope] rotary_dim must be >= 0 (0 = head_dim), got ", cfg.rotary_dim);
  int64_t rot = cfg.rotary_dim == 0 ? cfg.head_dim : cfg.rotary_dim;
  LMLAB_CHECK(rot <= cfg.head_dim, ConfigError, "[rope] rotary_dim must be <= head_dim = ", cfg.head_dim, ", got ",
              rot);
  LMLAB_CHECK(rot % 2 == 0, ConfigError, "[rope] rotary_dim must be even (channels rotate in pairs), got ", rot,
              cfg.rotary_dim == 0 ? " (= head_dim)" : "");
  LMLAB_CHECK(std::isfinite(cfg.theta) && cfg.theta > 0, ConfigError, "[rope] theta must be positive, got ",
              cfg.theta);
  const RopeScaling& s = cfg.scaling;
  if (!s.freq_factors.empty()) {
    LMLAB_CHECK(int64_t(s.freq_factors.size()) == rot / 2, ConfigError, "[rope] freq_factors has ",
                s.freq_factors.size(), " entries, expected rotary_dim / 2 = ", rot / 2);
    for (size_t i = 0; i < s.freq_factors.size(); ++i)
      LMLAB_CHECK(std::isfinite(s.freq_factors[i]) && s.freq_factors[i] > 0, ConfigError, "[rope] freq_factors[", i,
                  "] must be finite and positive, got ", s.freq_factors[i]);
  }
  if (s.type == RopeScaling::Type::None) return rot;
  LMLAB_CHECK(std::isfinite(s.factor) && s.factor > 0, ConfigError, "[rope] scaling factor must be positive, got ",
              s.factor);
  if (s.type == RopeScaling::Type::Llama3) {
    LMLAB_CHECK(s.low_freq_factor > 0 && s.high_freq_factor > s.low_freq_factor, ConfigError,
                "[rope] llama3 scaling needs 0 < low_freq_factor < high_freq_factor, got ", s.low_freq_factor, " and ",
                s.high_freq_factor);
    LMLAB_CHECK(s.original_max_position > 0, ConfigError, "[rope] llama3 original_max_position must be positive, got ",
                s.original_max_position);
  } else if (s.type == RopeScaling::Type::Yarn) {
    LMLAB_CHECK(cfg.theta > 1, ConfigError, "[rope] yarn scaling needs theta > 1 (it divides by log(theta)), got ",
                cfg.theta);
    LMLAB_CHECK(s.original_max_position > 0, ConfigError, "[rope] yarn original_max_position must be positive, got ",
                s.original_max_position);
    LMLAB_CHECK(s.beta_fast > 0 && s.beta_slow > 0, ConfigError,
                "[rope] yarn beta_fast and beta_slow must be positive, got ", s.beta_fast, " and ", s.beta_slow);
    LMLAB_CHECK(std::isfinite(s.attention_factor) && s.attention_factor >= 0, ConfigError,
                "[rope] yarn attention_factor must be >= 0 (0 = default), got ", s.attention_factor);
  }
  return rot;
}

// ---- inverse frequencies [rot / 2], HF `ROPE_INIT_FUNCTIONS` semantics, all in double ----
std::vector<double> inv_freq_of(const RopeConfig& cfg, int64_t rot) {
  int64_t half = rot / 2;
  const RopeScaling& s = cfg.scaling;
  // Default: theta^(-2i / rot), i < rot/2.
  std::vector<double> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) f[size_t(i)] = std::pow(cfg.theta, -double(2 * i) / double(rot));
  switch (s.type) {
    case RopeScaling::Type::None:
      break;
    case RopeScaling::Type::Linear:
      // Positions / factor (position interpolation, Chen et al. 2023) == inv_freq / factor.
      for (auto& v : f) v /= s.factor;
      break;
    case RopeScaling::Type::Llama3: {
      // Wavelengths shorter than L / high_freq_factor keep their frequency, longer than
      // L / low_freq_factor are divided by factor, and in between blend linearly in L / wavelen.
      double L = double(s.original_max_position);
      double low_wavelen = L / s.low_freq_factor, high_wavelen = L / s.high_freq_factor;
      for (auto& v : f) {
        double wavelen = 2 * kPi / v;
        if (wavelen < high_wavelen) continue;
        if (wavelen > low_wavelen) {
          v /= s.factor;
          continue;
        }
        double smooth = (L / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        v = (1 - smooth) * v / s.factor + smooth * v;
      }
      break;
    }
    case RopeScaling::Type::Yarn: {
      // NTK-by-parts (Peng et al. 2023, YaRN): pair i completes L / wavelen_i rotations over the
      // original context. Pairs with more than beta_fast rotations extrapolate (keep inv_freq), pairs
      // with fewer than beta_slow interpolate (inv_freq / factor), with a linear ramp in i between.
      double L = double(s.original_max_position);
      // The (fractional) pair index whose wavelength gives `rotations` turns over L.
      auto correction_dim = [&](double rotations) {
        return double(rot) * std::log(L / (rotations * 2 * kPi)) / (2 * std::log(cfg.theta));
      };
      double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
      if (s.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, double(rot - 1));
      if (low == high) high += 0.001;  // HF: avoids a zero-width ramp
      for (int64_t i = 0; i < half; ++i) {
        double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
        double extrapolation = 1 - ramp;
        double v = f[size_t(i)];
        f[size_t(i)] = v / s.factor * (1 - extrapolation) + v * extrapolation;
      }
      break;
    }
  }
  for (size_t i = 0; i < s.freq_factors.size(); ++i) f[i] /= s.freq_factors[i];
  return f;
}

double attention_factor_of(const RopeConfig& cfg) {
  const RopeScaling& s = cfg.scaling;
  if (s.type != RopeScaling::Type::Yarn) return 1.0;
  if (s.attention_factor > 0) return s.attention_factor;
  // HF get_mscale: no temperature correction when not extending the context.
  return s.factor <= 1 ? 1.0 : 0.1 * std::log(s.factor) + 1.0;
}

// Everything one application (forward or backward) needs; shared by the autograd node.
struct RopePlan {
  int64_t B = 0, T = 0, H = 0, D = 0, rot = 0;
  bool interleaved = false;
  bool per_batch = false;        // positions [B, T] (else one [T] row shared by every batch)
  std::vector<int64_t> pos;      // [T] or [B * T]
  std::vector<double> inv_freq;  // [rot / 2]
  double attn = 1.0;
};

// ---- reference kernel: x [B, T, H, D] contiguous, angles, cos, sin and products in double ----
template <class S>
void rope_apply_ref(const S* x, S* y, const RopePlan& p, bool inverse) {
  int64_t half = p.rot / 2;
  for (int64_t b = 0; b < p.B; ++b) {
    for (int64_t t = 0; t < p.T; ++t) {
      double pos = double(p.pos[size_t(p.per_batch ? b * p.T + t : t)]);
      for (int64_t h = 0; h < p.H; ++h) {
        int64_t base = ((b * p.T + t) * p.H + h) * p.D;
        for (int64_t i = 0; i < half; ++i) {
          double angle = pos * p.inv_freq[size_t(i)];
          double c = std::cos(angle) * p.attn, s = std::sin(angle) * p.attn * (inverse ? -1.0 : 1.0);
          int64_t i0 = p.interleaved ? 2 * i : i, i1 = p.interleaved ? 2 * i + 1 : i + half;
          double x0 = x[base + i0], x1 = x[base + i1];
          y[base + i0] = S(x0 * c - x1 * s);
          y[base + i1] = S(x1 * c + x0 * s);
        }
        for (int64_t d = p.rot; d < p.D; ++d) y[base + d] = x[base + d];
      }
    }
  }
}

// y = m R(+-angle) x for any-layout x [B, T, H, D]; returns a contiguous tensor.
Tensor rope_run(const Tensor& x, const RopePlan& p, bool inverse) {
  Tensor xc = contig(x);
  Tensor y = Tensor::empty(x.shape(), x.dtype());  // [B, T, H, D]
  if (x.numel() == 0) return y;
  LMLAB_DISPATCH_FLOAT(x.dtype(), "rope", [&] {
    if (reference_mode()) {
      rope_apply_ref<scalar_t>(xc.data<scalar_t>(), y.data<scalar_t>(), p, inverse);
      return;
    }
    int64_t P = int64_t(p.pos.size()), half = p.rot / 2;
    std::vector<scalar_t> cos_t(size_t(P * half)), sin_t(size_t(P * half));  // [P, rot/2]
    cpu::rope_table<scalar_t>(p.pos.data(), P, p.inv_freq.data(), half, p.attn, inverse, cos_t.data(),
                              sin_t.data());
    cpu::rope_apply<scalar_t>(xc.data<scalar_t>(), y.data<scalar_t>(), cos_t.data(), sin_t.data(), p.B, p.T, p.H,
                              p.D, p.rot, p.interleaved, p.per_batch);
  });
  return y;
}

// Validates x against cfg and fills the plan's shape/config part (positions come from the caller).
RopePlan make_plan(const Tensor& x, const RopeConfig& cfg) {
  check_float(x, "rope", "x");
  LMLAB_CHECK(x.dim() == 4, ShapeError, "[rope] x must be [B, T, H, D], got ", shape_str(x.shape()));
  RopePlan p;
  p.B = x.size(0);
  p.T = x.size(1);
  p.H = x.size(2);
  p.D = x.size(3);
  LMLAB_CHECK(cfg.head_dim == p.D, ConfigError, "[rope] cfg.head_dim = ", cfg.head_dim,
              " does not match x's head dim D = ", p.D, " (x ", shape_str(x.shape()), ")");
  p.rot = check_rope_config(cfg);
  p.interleaved = cfg.interleaved;
  p.inv_freq = inv_freq_of(cfg, p.rot);
  p.attn = attention_factor_of(cfg);
  return p;
}

Tensor rope_with_plan(const Tensor& x, std::shared_ptr<const RopePlan> plan) {
  Tensor y = rope_run(x, *plan, false);
  return record(y, "rope", {x}, {}, [plan](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{rope_run(g, *plan, true)};
  });
}

}  // namespace

Tensor rope_inv_freq(const RopeConfig& cfg) {
  int64_t rot = check_rope_config(cfg);
  return Tensor::from_vector<double>(inv_freq_of(cfg, rot));
}

std::vector<double> rope_freq_factors(const RopeConfig& cfg) {
  const int64_t rot = check_rope_config(cfg);
  RopeConfig plain = cfg;
  plain.scaling = RopeScaling{};
  std::vector<double> base = inv_freq_of(plain, rot), scaled = inv_freq_of(cfg, rot);
  for (size_t i = 0; i < base.size(); ++i) base[i] /= scaled[i];
  return base;
}

double rope_attention_factor(const RopeConfig& cfg) {
  check_rope_config(cfg);
  return attention_factor_of(cfg);
}

Tensor rope(const Tensor& x, const RopeConfig& cfg, int64_t pos_offset) {
  auto plan = std::make_shared<RopePlan>(make_plan(x, cfg));
  plan->pos.resize(size_t(plan->T));
  for (int64_t t = 0; t < plan->T; ++t) plan->pos[size_t(t)] = pos_offset + t;
  return rope_with_plan(x, std::move(plan));
}

Tensor rope(const Tensor& x, const RopeConfig& cfg, const Tensor& positions) {
  auto plan = std::make_shared<RopePlan>(make_plan(x, cfg));
  check_index_dtype(positions, "rope", "positions");
  const Shape& ps = positions.shape();
  bool per_t = ps == Shape{plan->T}, per_bt = ps == Shape{plan->B, plan->T};
  LMLAB_CHECK(per_t || per_bt, ShapeError, "[rope] positions must be [T] = [", plan->T, "] or [B, T] = [", plan->B,
              ", ", plan->T, "], got ", shape_str(ps));
  plan->per_batch = per_bt;
  Tensor pc = contig(positions);
  plan->pos.resize(size_t(pc.numel()));
  for (int64_t i = 0; i < pc.numel(); ++i) plan->pos[size_t(i)] = index_at(pc, i);
  return rope_with_plan(x, std::move(plan));
}

}  // namespace lmlab
