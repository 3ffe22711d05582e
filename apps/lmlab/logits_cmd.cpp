// `lmlab logits -m MODEL (-p TEXT | --tokens 1,2,3) --out FILE.safetensors`: runs one forward pass
// and writes the token ids ("tokens", i32 [T]) and the logits at every position ("logits", f32
// [T, V]) so that another implementation's output can be compared number by number.
#include <cstdio>
#include <sstream>

#include "apps/lmlab/commands.h"
#include "lmlab/core/node.h"
#include "lmlab/core/parallel.h"
#include "lmlab/infer/model_loader.h"
#include "lmlab/io/safetensors.h"

namespace lmlab::app {

namespace {
std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LMLAB_CHECK(used == item.size() && !item.empty() && v >= 0 && v <= INT32_MAX, ValueError,
                "[logits] --tokens: '", item, "' is not a token id (expected comma-separated integers >= 0)");
    ids.push_back(int32_t(v));
  }
  LMLAB_CHECK(!ids.empty(), ValueError, "[logits] --tokens is empty");
  return ids;
}
}  // namespace

void register_logits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "Write the logits of a prompt at every position to a .safetensors file");
  struct Opts {
    std::string model, prompt, tokens, out;
    bool no_special = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("-m,--model", o->model, "A .gguf file, HF model folder, checkpoint or runs/<id>")->required();
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "Prompt text (tokenized with the model's tokenizer)");
  auto* t = cmd->add_option("--tokens", o->tokens, "Token ids, comma-separated (instead of -p)");
  p->excludes(t);
  cmd->add_option("--out", o->out, "Output .safetensors file")->required();
  cmd->add_flag("--no-special", o->no_special, "Do not add the tokenizer's BOS/template tokens to -p text");
  cmd->add_option("-t,--threads", o->threads, "Threads (0 = all)");
  cmd->callback([o] {
    LMLAB_CHECK(!o->prompt.empty() || !o->tokens.empty(), ValueError, "[logits] give -p TEXT or --tokens IDS");
    if (o->threads > 0) set_num_threads(o->threads);
    LoadedModel lm = load_model(o->model);
    std::vector<int32_t> ids;
    if (!o->tokens.empty()) {
      ids = parse_ids(o->tokens);
    } else {
      LMLAB_CHECK(lm.tokenizer != nullptr, IoError, "[logits] '", lm.folder,
                  "' has no tokenizer; pass --tokens instead of -p");
      ids = lm.tokenizer->encode(o->prompt);
      if (!o->no_special) ids = lm.tokenizer->post_process(std::move(ids));
    }
    const int64_t V = lm.model->cfg.vocab_size, T = int64_t(ids.size());
    for (int32_t id : ids)
      LMLAB_CHECK(id < V, ValueError, "[logits] token id ", id, " is outside the vocabulary of ", V);
    NoGrad ng;
    Tensor input = Tensor::from_vector(ids, {1, T}).to(DType::I64);
    Tensor logits = lm.model->forward(input).reshape({T, V}).to(DType::F32).contiguous();
    save_safetensors(o->out, {{"tokens", Tensor::from_vector(ids)}, {"logits", logits}},
                     {{"model", lm.folder}, {"format", "lmlab-logits"}});
    std::printf("wrote %s: %lld tokens x %lld logits\n", o->out.c_str(), (long long)T, (long long)V);
  });
}

}  // namespace lmlab::app
