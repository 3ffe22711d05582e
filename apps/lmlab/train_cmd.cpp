// `lmlab train`: train from a config file (key=value overrides), registered in runs/lmlab.db.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/lmlab/commands.h"
#include "lmlab/lab/train_run.h"
#include "lmlab/train/checkpoint.h"
#include "lmlab/train/corpus.h"

namespace lmlab::app {

namespace {
// Applies "a.b=value" to a JSON object (value parsed as JSON when it parses, else a string).
void apply_override(nlohmann::json& j, const std::string& kv) {
  auto eq = kv.find('=');
  LMLAB_CHECK(eq != std::string::npos, ConfigError, "[train] override '", kv, "' must be key=value");
  std::string key = kv.substr(0, eq), val = kv.substr(eq + 1);
  nlohmann::json* cur = &j;
  size_t pos = 0;
  while (true) {
    size_t dot = key.find('.', pos);
    std::string part = key.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (dot == std::string::npos) {
      try {
        (*cur)[part] = nlohmann::json::parse(val);
      } catch (const nlohmann::json::exception&) {
        (*cur)[part] = val;
      }
      return;
    }
    cur = &(*cur)[part];
    pos = dot + 1;
  }
}
}  // namespace

void register_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a language model (config file + key=value overrides)");
  static std::string config, name = "train", data;
  static std::vector<std::string> sets;
  static int64_t resume = 0;
  static double minutes = 0;
  cmd->add_option("-c,--config", config, "Train config JSON (see experiments/brown-gpt.json)");
  cmd->add_option("--set", sets, "Override a field: --set lr=3e-4 --set model.num_hidden_layers=6");
  cmd->add_option("--data", data, "Prepared corpus folder: fills train_data, val_data, vocab and tokenizer");
  cmd->add_option("--name", name, "Run name")->capture_default_str();
  cmd->add_option("--resume", resume, "Continue run ID from its newest checkpoint");
  cmd->add_option("--minutes", minutes, "Time budget: a deadline (the run stops on the clock, then evaluates and checkpoints)");
  cmd->callback([] {
    install_stop_handler();
    TrainRunOptions ro;
    ro.name = name;
    ro.resume_run = resume;
    ro.progress = progress_line;
    ro.log = log_line;
    TrainConfig cfg;
    if (resume == 0) {
      LMLAB_CHECK(!config.empty(), ConfigError, "[train] --config is required (or --resume ID)");
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(read_text_file(config));
      } catch (const nlohmann::json::exception& e) {
        throw FormatError(str_cat("[train] '", config, "' is not valid JSON: ", e.what()));
      }
      for (const auto& s : sets) apply_override(j, s);
      std::string tok_json;
      if (!data.empty()) {
        CorpusMeta m = load_corpus_meta(data);
        j["train_data"] = m.shard(0);
        j["val_data"] = m.shard(1);
        j["val_bytes_per_token"] = m.bytes_per_token(1);
        j["model"]["vocab_size"] = m.vocab_size;
        j["model"]["eos_token_id"] = m.eot_id;
        j["model"]["bos_token_id"] = m.eot_id;
        tok_json = read_text_file(m.tokenizer_path());
      }
      if (minutes > 0) j["time_budget_s"] = minutes * 60;
      cfg = TrainConfig::from_json(j.dump(), config);
      cfg.tokenizer_json = tok_json;
    }
    TrainRunResult r = run_training(cfg, ro);
    progress_done();
    std::string val = r.final_eval.step > 0 ? str_cat("; val loss ", r.final_eval.val_loss) : "; no evaluation";
    std::string budget = r.time_budget_s > 0 ? str_cat(r.stopped_on_clock ? "; stopped on the clock: " : "; ", r.steps,
                                                       " steps fit in the ", format_duration(r.time_budget_s), " budget")
                                             : "";
    std::printf("run %lld %s after %lld steps (%s)%s%s; checkpoint %s\n", (long long)r.run_id, r.status.c_str(),
                (long long)r.steps, format_duration(r.seconds).c_str(), budget.c_str(), val.c_str(), r.checkpoint.c_str());
  });
}

}  // namespace lmlab::app
