// Window loaders.
#include "lmlab/data/loader.h"

#include "lmlab/core/rng.h"

namespace lmlab {

WindowLoader::WindowLoader(TokenShard shard, int64_t batch, int64_t context, uint64_t seed)
    : shard_(std::move(shard)), B_(batch), T_(context), seed_(seed) {
  LMLAB_CHECK(batch > 0 && context > 0, ConfigError, "[loader] batch and context must be positive, got ", batch,
              " and ", context);
  LMLAB_CHECK(shard_.size() >= uint64_t(context + 1) * 2, ConfigError, "[loader] '", shard_.path(), "' has ",
              shard_.size(), " tokens, too few for windows of ", context + 1);
  start_epoch();
}

void WindowLoader::start_epoch() {
  // Per-epoch generator: (seed, epoch) fixes the shift and the permutation.
  Generator g(seed_ * 0x9E3779B97F4A7C15ull + epoch_ + 1);
  uint64_t W = uint64_t(T_ + 1);
  offset_ = uint64_t(g.randint(0, int64_t(W)));
  uint64_t n = (shard_.size() - offset_) / W;
  order_.resize(n);
  for (uint64_t i = 0; i < n; ++i) order_[i] = i;
  for (uint64_t i = n; i > 1; --i) std::swap(order_[i - 1], order_[uint64_t(g.randint(0, int64_t(i)))]);
}

void WindowLoader::set_state(const LoaderState& s) {
  LMLAB_CHECK(s.seed == seed_, ConfigError, "[loader] saved state has seed ", s.seed, ", this loader ", seed_);
  epoch_ = s.epoch;
  start_epoch();
  LMLAB_CHECK(s.index <= order_.size(), ConfigError, "[loader] saved index ", s.index, " beyond the epoch's ",
              order_.size(), " windows");
  index_ = s.index;
}

Batch WindowLoader::next() {
  Tensor in = Tensor::empty({B_, T_}, DType::I64), tg = Tensor::empty({B_, T_}, DType::I64);
  int64_t* ip = in.data<int64_t>();
  int64_t* tp = tg.data<int64_t>();
  std::vector<int64_t> buf(static_cast<size_t>(T_ + 1));
  for (int64_t b = 0; b < B_; ++b) {
    if (index_ >= order_.size()) {
      ++epoch_;
      index_ = 0;
      start_epoch();
    }
    uint64_t start = offset_ + order_[index_++] * uint64_t(T_ + 1);
    shard_.read(start, uint64_t(T_ + 1), buf.data());
    std::copy(buf.begin(), buf.end() - 1, ip + b * T_);
    std::copy(buf.begin() + 1, buf.end(), tp + b * T_);
  }
  return {in, tg};
}

SequentialLoader::SequentialLoader(TokenShard shard, int64_t batch, int64_t context, int64_t max_batches)
    : shard_(std::move(shard)), B_(batch), T_(context), max_batches_(max_batches) {
  LMLAB_CHECK(batch > 0 && context > 0, ConfigError, "[loader] batch and context must be positive");
}

bool SequentialLoader::next(Batch& out) {
  if (max_batches_ >= 0 && done_ >= max_batches_) return false;
  uint64_t W = uint64_t(T_ + 1);
  int64_t rows = int64_t(std::min<uint64_t>(uint64_t(B_), (shard_.size() - std::min(pos_, shard_.size())) / W));
  if (rows <= 0) return false;
  Tensor in = Tensor::empty({rows, T_}, DType::I64), tg = Tensor::empty({rows, T_}, DType::I64);
  std::vector<int64_t> buf(static_cast<size_t>(W));
  for (int64_t b = 0; b < rows; ++b) {
    shard_.read(pos_, W, buf.data());
    std::copy(buf.begin(), buf.end() - 1, in.data<int64_t>() + b * T_);
    std::copy(buf.begin() + 1, buf.end(), tg.data<int64_t>() + b * T_);
    pos_ += uint64_t(T_);  // windows overlap by one token so every token is predicted once
  }
  out = {in, tg};
  ++done_;
  return true;
}

}  // namespace lmlab
