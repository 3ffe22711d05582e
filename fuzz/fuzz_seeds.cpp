// Writes the seed corpora: small valid inputs made by lmlab's own writers, one folder per target
// under argv[1] (corpus/<target>/). The fuzzers start from these, so they reach the deep checks
// (offsets, layouts, block types) instead of stalling on the magic and the JSON syntax.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz/fuzz_common.h"
#include "fuzz/fuzz_models.h"
#include "lmlab/core/file.h"
#include "lmlab/models/model_check.h"
#include "lmlab/tokenizer/tokenizer.h"
#include "lmlab/train/trainer.h"
#include "lmlab/core/quant.h"
#include "lmlab/io/gguf.h"
#include "lmlab/io/safetensors.h"

using namespace lmlab;
namespace fs = std::filesystem;

namespace {

void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  write_file_atomic((dir / name).string(), bytes, "fuzz_seeds");
}

// A file of the source tree (seeds that are the project's own examples).
std::string source_file(const std::string& rel) { return read_text_file(std::string(LMLAB_SOURCE_DIR) + "/" + rel); }

// Kimi-Linear's config.json form: the layer schedule as linear_attn_config lists, no layer_pattern.
std::string kimi_release_form(const TransformerConfig& c) {
  nlohmann::json j = nlohmann::json::parse(c.to_json());
  j.erase("layer_pattern");
  return j.dump(1);
}

std::string with(const std::string& json, const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(json);
  j[key] = nlohmann::json::parse(value);
  return j.dump(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
    return 2;
  }
  fs::path out = argv[1];
  try {
    fs::path st = out / "fuzz_safetensors";
    put(st, "empty", safetensors_bytes({}));
    put(st, "meta", safetensors_bytes({}, {{"format", "pt"}, {"note", "x"}}));
    put(st, "f32", safetensors_bytes({{"w", fuzz::ramp({2, 3}, 0.5f)}}));
    put(st, "mixed", safetensors_bytes({{"a", fuzz::ramp({4}, 1.0f)},
                                        {"b", fuzz::cast(fuzz::ramp({3}, 1.0f), DType::BF16)},
                                        {"c", Tensor::arange(3, DType::I64)},
                                        {"d", fuzz::cast(fuzz::ramp({2}, 1.0f), DType::F16)},
                                        {"e", Tensor::zeros({0, 4})},
                                        {"f", Tensor::ones({5}, DType::U8)}},
                                       {{"format", "pt"}}));

    fs::path ix = out / "fuzz_safetensors_index";
    put(ix, "valid", fuzz::fixed_index());
    // the seed must reach the end of the cross-checks, or the fuzzer starts from an early reject
    SafetensorsShards::assemble("seed", SafetensorsIndex::parse(fuzz::fixed_index()), fuzz::fixed_shards());
    put(ix, "no_total", R"({"weight_map": {"norm": "sub/extra.safetensors", "embed.weight": "sub/extra.safetensors"}})");
    put(ix, "float_total", R"({"metadata": {"total_size": 24.0}, "weight_map": {"embed.weight": "model-00001-of-00002.safetensors"}})");

    // the chat templates of tests/chat (feature, family-style and failing ones)
    fs::path jj = out / "fuzz_jinja";
    for (const auto& e : fs::directory_iterator(std::string(LMLAB_SOURCE_DIR) + "/tests/chat/templates"))
      if (e.path().extension() == ".jinja") put(jj, e.path().filename().string(), read_text_file(e.path().string()));

    fs::path gg = out / "fuzz_gguf";
    GgufWriter meta;
    meta.set("general.architecture", "llama");
    meta.set("general.alignment", uint32_t(16));
    meta.set("u8", uint8_t(1));
    meta.set("i64", int64_t(-5));
    meta.set("f64", 0.25);
    meta.set("ok", true);
    meta.set("toks", GgufValue::array(GgufType::STRING, {"a", "bb"}));
    meta.set("nested", GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::I32, {int32_t(1)})}));
    put(gg, "meta", meta.bytes());
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K,
                       GgmlType::Q6_K}) {
      GgufWriter w;
      int64_t n = ggml_block_size(t) == 1 ? 8 : ggml_block_size(t);
      w.add_tensor("t", fuzz::ramp({1, n}, 0.1f), t);
      put(gg, std::string("one_") + ggml_type_name(t), w.bytes());
    }
    // alignment 1: tensors at odd offsets, so the decoders meet unaligned blocks as a real file may give them
    GgufWriter odd;
    odd.set("general.alignment", uint32_t(1));
    odd.set("x", uint8_t(7));
    odd.add_tensor("h", fuzz::ramp({3}, 0.5f), GgmlType::F16);
    odd.add_tensor("q", fuzz::ramp({32}, 0.5f), GgmlType::Q8_0);
    odd.add_tensor("k", fuzz::ramp({256}, 0.5f), GgmlType::Q6_K);
    put(gg, "odd_alignment", odd.bytes());
    GgufWriter two;
    two.add_tensor("a", fuzz::ramp({2, 32}, 0.2f), GgmlType::Q8_0);
    two.add_tensor("b", fuzz::ramp({4}, 1.0f));
    put(gg, "two", two.bytes());

    // config.json: the fixed checkpoints' own (each loads fully), Kimi's list form, rope scalings.
    fs::path hc = out / "fuzz_hf_config";
    for (const auto& f : fuzz::fixed_checkpoints()) {
      load_hf_model(f.folder);  // a seed must reach the end of the load, or the fuzzer starts from a reject
      put(hc, f.name, f.folder.config_json);
    }
    const std::string kimi = kimi_release_form(fuzz::fixed_kimi());
    put(hc, "kimi_lists", kimi);
    put(hc, "kimi_lists_base0", with(with(kimi, "linear_attn_config",
                                          R"({"kda_layers": [0], "full_attn_layers": [1], "kda_layer_index_base": 0,
                                              "num_heads": 2, "head_dim": 8, "short_conv_kernel_size": 2})"),
                                     "layer_pattern", "null"));
    const std::string llama = fuzz::fixed_checkpoints()[0].folder.config_json;
    put(hc, "llama3_rope", with(llama, "rope_scaling", R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"));
    put(hc, "yarn_rope", with(llama, "rope_scaling", R"({"type": "yarn", "factor": 4.0, "mscale": 1.0,
        "mscale_all_dim": 0.5, "original_max_position_embeddings": 16})"));
    put(hc, "qwen2_window", with(with(with(llama, "architectures", R"(["Qwen2ForCausalLM"])"), "use_sliding_window", "true"),
                                 "sliding_window", "4"));
    // every seed written here must parse (the folder also holds what earlier fuzzing runs added)
    for (const char* name : {"kimi_lists", "kimi_lists_base0", "llama3_rope", "yarn_rope", "qwen2_window"})
      TransformerConfig::from_json(read_text_file((hc / name).string()));

    // train configs: the project's example and a small MoE one
    fs::path tc = out / "fuzz_train_config";
    put(tc, "brown_gpt", source_file("experiments/brown-gpt.json"));
    TrainConfig t;
    t.model = fuzz::fixed_qwen3_moe();
    t.train_data = "data/train.tok";
    t.context = 16;
    t.batch_size = 2;
    t.moe_aux_loss_coef = 0.01;
    put(tc, "moe", t.to_json());
    t.model = fuzz::fixed_kimi();
    t.precision = "bf16";
    put(tc, "kimi", t.to_json());
    for (const char* name : {"brown_gpt", "moe", "kimi"}) TrainConfig::from_json(read_text_file((tc / name).string()));

    // tokenizer.json: the tokenizer tests' small files and a freshly trained byte-level BPE
    fs::path tj = out / "fuzz_tokenizer_json";
    for (const char* n : {"gpt2_tiny", "llama3_tiny", "spm_tiny"})
      put(tj, n, source_file(std::string("tests/tokenizer/data/") + n + ".json"));
    TrainOptions topt;
    topt.vocab_size = 300;
    topt.special_tokens = {"<|endoftext|>"};
    topt.num_threads = 1;
    put(tj, "trained", Tokenizer::train({"the cat sat on the mat", "the dog ate the cat's food", "é ü 😀 x"}, topt).to_json());
    for (const char* name : {"gpt2_tiny", "llama3_tiny", "spm_tiny", "trained"})
      Tokenizer::from_json(read_text_file((tj / name).string()));

    // tokenizer_config.json / generation_config.json
    fs::path tk = out / "fuzz_tokenizer_config";
    put(tk, "llama3", R"({"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>", "lstrip": false},
  "pad_token": null, "unk_token": "<unk>", "add_bos_token": true, "add_eos_token": false,
  "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"})");
    put(tk, "templates", R"({"chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}]})");
    put(tk, "generation", R"({"bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": 0, "do_sample": true,
  "temperature": 0.6, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "max_new_tokens": 256, "max_length": 4096})");
  } catch (const Error& e) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
