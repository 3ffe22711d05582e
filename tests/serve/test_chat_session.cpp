// ChatSession: turns render through the template, the state keeps the rendered prefix between
// turns (only new tokens are fed), a recurrent model goes on or starts its state over, the end-of-turn
// tokens stop a reply, and a prompt over the context takes the user's message back.
#include <gtest/gtest.h>

#include "lmlab/serve/chat_session.h"
#include "tests/serve/serve_test_util.h"

using namespace lmlab;

using serve_test::chatml;
using serve_test::tiny_tokenizer;

namespace {
TransformerConfig tiny(int64_t vocab, const std::string& pattern = "") {
  return serve_test::tiny_config(vocab, 32, 2, 160, pattern);
}
}  // namespace

TEST(ChatSession, ReusesTheRenderedPrefixAcrossTurns) {
  Tokenizer tok = tiny_tokenizer();
  Transformer m(tiny(tok.vocab_size()), 7);
  serve::ChatSession s(m, tok, chatml(), serve::chat_stop_ids(tok, {}, chatml()));
  GenerateOptions o;
  o.sampler.temperature = 0;
  o.max_new_tokens = 4;
  s.set_system("the dog");
  auto r1 = s.reply("hello", o);
  EXPECT_EQ(s.reused_tokens(), 0);
  auto r2 = s.reply("the cat", o);
  // the second prompt starts with the first turn as rendered: all of it but the reply's last
  // token (never fed) is already in the state
  EXPECT_GT(s.reused_tokens(), 8);
  ASSERT_EQ(s.messages().size(), 5u);
  EXPECT_EQ(s.messages()[2]["content"], r1.text);
  EXPECT_EQ(s.messages()[4]["role"], "assistant");
  // the same conversation from a fresh session gives the same greedy reply to the second turn
  serve::ChatSession fresh(m, tok, chatml(), serve::chat_stop_ids(tok, {}, chatml()));
  fresh.set_system("the dog");
  fresh.reply("hello", o);
  EXPECT_EQ(fresh.reply("the cat", o).tokens, r2.tokens);
}

TEST(ChatSession, RecurrentLayersStartTheStateOver) {
  Tokenizer tok = tiny_tokenizer();
  Transformer m(tiny(tok.vocab_size(), "KA"), 8);
  serve::ChatSession s(m, tok, chatml(), {});
  GenerateOptions o;
  o.sampler.temperature = 0;
  o.max_new_tokens = 3;
  s.reply("hello", o);
  auto r2 = s.reply("the cat", o);
  // the whole state is a prefix of the next prompt: a recurrent state can go on from there
  EXPECT_GT(s.reused_tokens(), 0);
  // a new system prompt changes the start: the state cannot rewind, so it starts over
  s.set_system("the dog");
  auto r3 = s.reply("the mat", o);
  EXPECT_EQ(s.reused_tokens(), 0);
  serve::ChatSession fresh(m, tok, chatml(), {});
  fresh.reply("hello", o);
  EXPECT_EQ(fresh.reply("the cat", o).tokens, r2.tokens);
  (void)r3;
}

TEST(ChatSession, StopTokensAndContextOverflow) {
  Tokenizer tok = tiny_tokenizer();
  auto ids = serve::chat_stop_ids(tok, {}, chatml());
  ASSERT_TRUE(tok.token_to_id("<|im_end|>"));
  EXPECT_NE(std::find(ids.begin(), ids.end(), int64_t(*tok.token_to_id("<|im_end|>"))), ids.end());
  Transformer m(tiny(tok.vocab_size()), 9);
  serve::ChatSession s(m, tok, chatml(), ids);
  GenerateOptions o;
  o.max_new_tokens = 2;
  std::string huge;
  for (int i = 0; i < 200; ++i) huge += "the cat sat on the mat ";
  EXPECT_THROW(s.reply(huge, o), ValueError);
  EXPECT_TRUE(s.messages().empty());  // the message that did not fit was taken back
  s.reply("hello", o);
  EXPECT_EQ(s.messages().size(), 2u);
  s.reset();
  EXPECT_TRUE(s.messages().empty());
}
