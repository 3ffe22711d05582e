// Byte-level BPE model (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with
// Subword Units"; byte-level variant of GPT-2, Radford et al. 2019): a vocabulary of byte strings
// with arbitrary ids, and an ordered merge list whose index is the merge's rank. Mirrors the
// "model" section of HF tokenizer.json (type "BPE"); vocabulary strings are in the byte-level
// alphabet of byte_level.h.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lmlab/tokenizer/merge_cache.h"

namespace lmlab {

class BpeModel {
 public:
  BpeModel() = default;
  // Validates and indexes a vocabulary (mapped token string, id) and merges (left, right mapped
  // strings, in rank order). Throws FormatError, prefixed by `where` (e.g. "[tokenizer] f.json"),
  // naming the offending field: a duplicate or negative id, a byte symbol missing from the vocab
  // (every one of the 256 must be there, so any byte string encodes), or a merge whose part or
  // concatenation is not in the vocab (naming the merge index and text).
  BpeModel(const std::vector<std::pair<std::string, int32_t>>& vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges,
           const std::string& where);

  // Appends the ids of one pre-tokenized piece of raw bytes. With ignore_merges (Llama-3), a
  // piece whose mapped form is itself a vocab token is emitted whole. Otherwise symbols start as
  // single bytes and the lowest-rank adjacent pair is merged until none has a rank (leftmost
  // first among equal ranks), with a min-heap over candidate pairs: O(n log n) per piece.
  // Thread-safe.
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view mapped) const;
  // The mapped token string of id, or nullptr when id is not in the vocab.
  const std::string* id_to_token(int32_t id) const;
  // The raw bytes id stands for (byte_level::decode of its token string).
  const std::string* token_bytes(int32_t id) const;
  // One past the largest id (ids may have holes).
  int32_t id_limit() const { return int32_t(tokens_.size()); }
  size_t size() const { return vocab_.size(); }
  bool ignore_merges() const { return ignore_merges_; }
  int32_t byte_id(uint8_t b) const { return byte_id_[b]; }
  // Merges in rank order, as (left id, right id).
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t result;
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  const MergeInfo* find_merge(int32_t a, int32_t b) const;
  void merge_piece(std::string_view bytes, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> tokens_;  // by id; empty string with present_[id]=0 marks a hole
  std::vector<std::string> bytes_;   // by id: raw bytes
  std::vector<uint8_t> present_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::unordered_map<uint64_t, MergeInfo> merge_index_;
  int32_t byte_id_[256] = {};
  bool ignore_merges_ = false;
  MergeCache cache_;
};

}  // namespace lmlab
