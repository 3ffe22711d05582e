// The plumbing experiment kinds share.
#include "lmlab/lab/exp_common.h"

#include <filesystem>

#include "lmlab/core/file.h"
#include "lmlab/core/node.h"
#include "lmlab/data/loader.h"
#include "lmlab/objectives/causal_lm.h"

namespace lmlab::exp {

double shard_loss(const Transformer& m, const std::string& shard, int64_t context, int64_t batch) {
  NoGrad ng;
  SequentialLoader l(TokenShard::open(shard), batch, context);
  Batch b;
  double sum = 0;
  int64_t n = 0;
  while (l.next(b)) {
    sum += causal_lm_loss(m, b.inputs, b.targets).item() * double(b.inputs.numel());
    n += b.inputs.numel();
  }
  return n ? sum / double(n) : NAN;
}

std::vector<uint64_t> seeds_of(const ExperimentContext& ctx, uint64_t spec_seed) {
  uint64_t first = ctx.seed > 0 ? ctx.seed : spec_seed;
  std::vector<uint64_t> v;
  for (int i = 0; i < std::max(1, ctx.seeds); ++i) v.push_back(first + uint64_t(i));
  return v;
}

Measured over_seeds(const ExperimentContext& ctx, uint64_t spec_seed,
                    const std::function<Measurements(uint64_t seed)>& measure) {
  Measured m;
  std::vector<uint64_t> seeds = seeds_of(ctx, spec_seed);
  for (size_t i = 0; i < seeds.size(); ++i) {
    if (seeds.size() > 1 && ctx.log) ctx.log(str_cat("======== seed ", seeds[i], " (", i + 1, " of ", seeds.size(), ") ========"));
    Measurements r = measure(seeds[i]);
    r.seed = seeds[i];
    m.seeds.push_back(std::move(r));
  }
  return m;
}

TrainRunResult train_variant(const ExperimentContext& ctx, const TrainConfig& cfg, const std::string& variant) {
  TrainRunOptions ro;
  ro.name = ctx.name + "/" + ctx.scale + "/" + variant + (ctx.seeds > 1 ? str_cat("/seed", cfg.seed) : "");
  ro.registry_path = ctx.registry_path;
  ro.runs_dir = ctx.runs_dir;
  ro.log = ctx.log;
  std::string tag = ctx.seeds > 1 ? str_cat(variant, " seed ", cfg.seed) : variant;
  if (ctx.progress) ro.progress = [&ctx, tag](const std::string& p) { ctx.progress(tag + ": " + p); };
  return run_training(cfg, ro);
}

ExperimentRun open_experiment_run(const ExperimentContext& ctx) {
  ExperimentRun r{RunRegistry::open(ctx.registry_path), 0, ""};
  nlohmann::json config = ctx.spec;
  config["run"] = {{"scale", ctx.scale}, {"seed", ctx.seed}, {"seeds", ctx.seeds}, {"minutes", ctx.minutes}};
  r.id = r.reg.create_run(ctx.name + "/" + ctx.scale, "exp", config.dump(), current_git_commit("."));
  r.out = ctx.out_dir.empty() ? ctx.runs_dir + "/" + std::to_string(r.id) : ctx.out_dir;
  std::filesystem::create_directories(r.out);
  return r;
}

void fail_experiment_run(ExperimentRun& run, const std::string& error) {
  run.reg.finish_run(run.id, "failed", nlohmann::json({{"error", error}}).dump());
}

std::string seed_metric(const ExperimentContext& ctx, uint64_t seed, const std::string& name) {
  return ctx.seeds > 1 ? str_cat("seed", seed, "/", name) : name;
}

nlohmann::ordered_json results_head(const ExperimentContext& ctx, int64_t run_id, const Measured& m) {
  nlohmann::ordered_json j;
  j["experiment"] = ctx.name;
  j["scale"] = ctx.scale;
  j["run_id"] = run_id;
  j["seeds"] = m.seed_list();
  j["settings"] = ctx.settings;
  return j;
}

nlohmann::ordered_json figures_json(const Measured& m) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const auto& s : m.seeds) {
    nlohmann::ordered_json f;
    for (const auto& [k, v] : s.figures) f[k] = std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json();
    a.push_back({{"seed", s.seed}, {"figures", f}});
  }
  return a;
}

std::string seeds_sentence(const Measured& m) {
  if (m.seeds.size() == 1)
    return str_cat("One seed (", m.seeds[0].seed, "): a verdict here is one run's outcome, an anecdote at this scale; "
                   "rerun with --seeds N to see the spread.");
  std::string list;
  for (auto s : m.seed_list()) list += (list.empty() ? "" : ", ") + std::to_string(s);
  return str_cat(m.seeds.size(), " seeds (", list, "); figures are mean ± standard deviation over the seeds, plots show "
                 "the mean with a band from the lowest to the highest seed. A claim held when its margin is positive in "
                 "every seed or its mean exceeds its spread; did not hold in the opposite case; mixed otherwise.");
}

void add_run_facts(Report& rep, const ExperimentContext& ctx, int64_t run_id, const Measured& m) {
  rep.add_kv("scale", ctx.scale);
  rep.add_kv("run", std::to_string(run_id));
  std::string list;
  for (auto s : m.seed_list()) list += (list.empty() ? "" : ", ") + std::to_string(s);
  rep.add_kv("seeds", list);
}

void add_rerun(Report& rep, const ExperimentContext& ctx) {
  rep.add_heading(2, "Rerun");
  rep.add_code(str_cat("lmlab exp run ", ctx.name, " --scale ", ctx.scale, ctx.seed > 0 ? str_cat(" --seed ", ctx.seed) : "",
                       ctx.seeds > 1 ? str_cat(" --seeds ", ctx.seeds) : "",
                       ctx.minutes > 0 ? str_cat(" --minutes ", ctx.minutes) : ""));
}

ExperimentResult finish(ExperimentRun& run, const Report& rep, const nlohmann::ordered_json& results,
                        const std::vector<std::pair<std::string, std::string>>& plots, const nlohmann::json& summary,
                        std::vector<std::string> highlights, const std::vector<Claim>& claims) {
  write_file_atomic(run.out + "/results.json", results.dump(2) + "\n");
  rep.write(run.out);
  for (const char* f : {"report.md", "report.html", "results.json"}) run.reg.add_artifact(run.id, "report", run.out + "/" + f);
  for (const auto& [path, caption] : plots) run.reg.add_artifact(run.id, "plot", path);
  run.reg.finish_run(run.id, "done", summary.dump());
  ExperimentResult er;
  er.out_dir = run.out;
  er.report_html = run.out + "/report.html";
  er.report_md = run.out + "/report.md";
  er.results_json = run.out + "/results.json";
  er.highlights = std::move(highlights);
  for (const auto& c : claims)
    er.highlights.push_back(str_cat(c.group.empty() ? "" : c.group + ": ", c.claim, " -> ", verdict_name(c.verdict), " (",
                                    c.ours, ")"));
  return er;
}

void use_corpus(TrainConfig& cfg, const CorpusMeta& corpus, uint64_t seed) {
  cfg.model.vocab_size = corpus.vocab_size;
  cfg.model.eos_token_id = cfg.model.bos_token_id = corpus.eot_id;
  cfg.train_data = corpus.shard(0);
  cfg.val_data = corpus.shard(1);
  cfg.val_bytes_per_token = corpus.bytes_per_token(1);
  cfg.tokenizer_json = read_text_file(corpus.tokenizer_path());
  cfg.seed = seed;
}

}  // namespace lmlab::exp
