// Training runs recorded in the registry.
#include "lmlab/lab/train_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace lmlab {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  int64_t t = int64_t(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t % 3600 / 60));
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

std::vector<std::pair<std::string, double>> moe_metrics(const MoEStatsInfo& info) {
  std::vector<std::pair<std::string, double>> m = {{"moe/aux_loss", info.aux_loss}, {"moe/z_loss", info.z_loss}};
  double worst = 0, cv = 0, dead = 0;
  for (const auto& l : info.layers) {
    std::string p = "moe/layer" + std::to_string(l.layer) + "/";
    m.emplace_back(p + "max_over_mean", l.max_over_mean);
    m.emplace_back(p + "cv", l.cv);
    m.emplace_back(p + "dead", double(l.dead));
    std::vector<double> share = l.token_share();
    for (size_t e = 0; e < share.size(); ++e) m.emplace_back(p + "share_" + std::to_string(e), share[e]);
    worst = std::max(worst, l.max_over_mean);
    cv += l.cv / double(info.layers.size());
    dead += double(l.dead);
  }
  m.emplace_back("moe/max_over_mean", worst);
  m.emplace_back("moe/cv", cv);
  m.emplace_back("moe/dead", dead);
  return m;
}

TrainRunResult run_training(TrainConfig cfg, const TrainRunOptions& opt) {
  RunRegistry reg = RunRegistry::open(opt.registry_path);
  TrainRunResult res;
  std::string commit = current_git_commit(".");
  if (opt.resume_run > 0) {
    RunInfo info = reg.get_run(opt.resume_run);
    res.run_id = info.id;
    cfg = TrainConfig::from_json(info.config_json, "run " + std::to_string(info.id) + " config");
  } else {
    res.run_id = reg.create_run(opt.name, "train", cfg.to_json(), commit);
  }
  if (opt.use_run_dir) cfg.out_dir = opt.runs_dir + "/" + std::to_string(res.run_id);
  res.out_dir = cfg.out_dir;
  std::filesystem::create_directories(cfg.out_dir);
  Trainer tr(cfg);
  res.parameters = tr.model().num_parameters();
  if (opt.resume_run > 0) {
    bool ok = tr.resume();
    LMLAB_CHECK(ok, IoError, "[train] run ", opt.resume_run, " has no checkpoint under '", cfg.out_dir,
                "/checkpoints' to resume from");
    if (opt.log) opt.log(str_cat("resumed run ", res.run_id, " at step ", tr.step()));
  } else if (opt.log) {
    opt.log(str_cat("run ", res.run_id, ": ", res.parameters, " parameters, ", cfg.steps, " steps max",
                    cfg.time_budget_s > 0 ? str_cat(", time budget ", format_duration(cfg.time_budget_s)) : "",
                    " -> ", cfg.out_dir));
  }
  std::vector<std::pair<std::string, double>> pending;
  tr.on_step = [&](const StepInfo& s) {
    reg.log_metrics(res.run_id, s.step, {{"train/loss", s.loss}, {"train/lr", s.lr}, {"train/tokens_per_s", s.tokens_per_s}});
    res.tokens_per_s = s.tokens_per_s;
    if (opt.progress) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  elapsed %s  ETA %s",
                    (long long)s.step, (long long)s.total_steps, s.loss, s.lr, s.tokens_per_s,
                    format_duration(s.elapsed_s).c_str(), format_duration(s.eta_s).c_str());
      opt.progress(buf);
    }
  };
  tr.on_eval = [&](const EvalInfo& e) {
    reg.log_metrics(res.run_id, e.step, {{"val/loss", e.val_loss}, {"val/ppl", e.val_ppl}, {"val/bpb", e.val_bpb}});
    res.final_eval = e;
    if (opt.log) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "eval @ %lld: val loss %.4f  ppl %.2f  bpb %.4f", (long long)e.step, e.val_loss,
                    e.val_ppl, e.val_bpb);
      opt.log(buf);
    }
  };
  tr.on_moe_stats = [&](const MoEStatsInfo& m) {
    reg.log_metrics(res.run_id, m.step, moe_metrics(m));
    res.moe = m;
    if (opt.log) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "moe @ %lld: aux %.4f  max/mean per layer", (long long)m.step, m.aux_loss);
      std::string line = buf;
      int64_t dead = 0;
      for (const auto& l : m.layers) {
        std::snprintf(buf, sizeof buf, " %.2f", l.max_over_mean);
        line += buf;
        dead += l.dead;
      }
      opt.log(str_cat(line, "  dead experts ", dead));
    }
  };
  tr.on_checkpoint = [&](const std::string& path) {
    reg.add_artifact(res.run_id, "checkpoint", path);
    res.checkpoint = path;
  };
  bool finished = false;
  try {
    finished = tr.run();
  } catch (const std::exception& e) {
    reg.finish_run(res.run_id, "failed", nlohmann::json({{"error", e.what()}, {"step", tr.step()}}).dump());
    throw;
  }
  res.status = finished ? "done" : "interrupted";
  res.steps = tr.step();
  res.tokens = tr.tokens();
  res.seconds = tr.elapsed_s();
  res.time_budget_s = cfg.time_budget_s;
  res.stopped_on_clock = tr.stopped_on_clock();
  nlohmann::json summary = {{"steps", res.steps},       {"tokens", res.tokens},
                            {"parameters", res.parameters}, {"val_loss", res.final_eval.val_loss},
                            {"val_ppl", res.final_eval.val_ppl}, {"val_bpb", res.final_eval.val_bpb},
                            {"tokens_per_s", res.tokens_per_s}, {"seconds", res.seconds},
                            {"checkpoint", res.checkpoint}};
  if (cfg.time_budget_s > 0) summary["time_budget"] = {{"seconds", cfg.time_budget_s}, {"stopped_on_clock", res.stopped_on_clock}};
  if (!res.moe.layers.empty()) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : res.moe.layers)
      layers.push_back({{"layer", l.layer}, {"counts", l.counts}, {"max_over_mean", l.max_over_mean}, {"cv", l.cv},
                        {"dead", l.dead}});
    summary["moe"] = {{"aux_loss", res.moe.aux_loss}, {"z_loss", res.moe.z_loss}, {"layers", layers}};
  }
  reg.finish_run(res.run_id, res.status, summary.dump());
  return res;
}

}  // namespace lmlab
