// `lmlab eval`: loss, perplexity and bits per byte of a model on a token shard.
#include <cmath>
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/core/node.h"
#include "lmlab/data/loader.h"
#include "lmlab/infer/model_loader.h"
#include "lmlab/objectives/causal_lm.h"
#include "lmlab/train/corpus.h"

namespace lmlab::app {

void register_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Evaluate a model on a prepared split (loss, perplexity, bits per byte)");
  static std::string model, data = "runs/data/brown-v4096", split = "val";
  static int64_t batch = 8, context = 0, max_batches = -1;
  cmd->add_option("-m,--model", model, "runs/<id>, checkpoint or HF folder")->required();
  cmd->add_option("--data", data, "Prepared corpus folder")->capture_default_str();
  cmd->add_option("--split", split, "train | val | test")->capture_default_str();
  cmd->add_option("--batch", batch, "Batch size")->capture_default_str();
  cmd->add_option("--context", context, "Window (0 = the model's context)");
  cmd->add_option("--max-batches", max_batches, "Stop after this many batches (-1 = all)");
  cmd->callback([] {
    int s = split == "train" ? 0 : split == "val" ? 1 : split == "test" ? 2 : -1;
    LMLAB_CHECK(s >= 0, ConfigError, "[eval] --split must be train, val or test, got '", split, "'");
    CorpusMeta meta = load_corpus_meta(data);
    LoadedModel lm = load_model(model);
    LMLAB_CHECK(meta.vocab_size <= lm.model->cfg.vocab_size, ConfigError, "[eval] corpus vocabulary ", meta.vocab_size,
                " exceeds the model's ", lm.model->cfg.vocab_size);
    int64_t T = context > 0 ? context : lm.model->cfg.max_position_embeddings;
    NoGrad ng;
    SequentialLoader l(TokenShard::open(meta.shard(s)), batch, T, max_batches);
    Batch b;
    double sum = 0;
    int64_t n = 0, k = 0;
    while (l.next(b)) {
      sum += causal_lm_loss(*lm.model, b.inputs, b.targets).item() * double(b.inputs.numel());
      n += b.inputs.numel();
      progress_line(str_cat("batch ", ++k, "  tokens ", n, "  loss ", sum / double(n)));
    }
    progress_done();
    double loss = sum / double(n);
    std::printf("%s %s: %lld tokens  loss %.4f nats/token  perplexity %.2f  bits/byte %.4f\n", lm.folder.c_str(),
                split.c_str(), (long long)n, loss, std::exp(loss), loss / std::log(2.0) / meta.bytes_per_token(s));
  });
}

}  // namespace lmlab::app
