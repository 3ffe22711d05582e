// The JSON-object prefix grammar: valid objects are accepted byte by byte and end complete; every
// kind of invalid byte is refused where it appears.
#include <gtest/gtest.h>

#include "lmlab/serve/json_constraint.h"

using lmlab::serve::JsonPrefix;

namespace {
bool accepts(const std::string& s, bool* complete = nullptr) {
  JsonPrefix j;
  bool ok = j.feed(s);
  if (complete) *complete = j.complete();
  return ok;
}
}  // namespace

TEST(JsonPrefix, ValidObjectsComplete) {
  for (const char* s : {"{}", " { } ", "{\"a\": 1}", "{\"a\": -0.5e+3, \"b\": [true, false, null, \"x\\n\\u00e9\"]}",
                        "{\"k\": {\"n\": [[], {}, [1, 2.0]]}}\n", "{\"s\": \"caf\xc3\xa9 \\\"q\\\"\"}"}) {
    bool done = false;
    EXPECT_TRUE(accepts(s, &done)) << s;
    EXPECT_TRUE(done) << s;
  }
}

TEST(JsonPrefix, PrefixesAreNotComplete) {
  for (const char* s : {"", "{", "{\"a\"", "{\"a\": ", "{\"a\": 12", "{\"a\": [1,", "{\"a\": tr", "{\"a\": \"x\\u00"}) {
    bool done = true;
    EXPECT_TRUE(accepts(s, &done)) << s;
    EXPECT_FALSE(done) << s;
  }
}

TEST(JsonPrefix, InvalidBytesAreRefused) {
  for (const char* s : {"[1]", "\"x\"", "1", "{a", "{\"a\" 1", "{\"a\": 01", "{\"a\": 1.}", "{\"a\": tru}", "{\"a\": [1,]}",
                        "{\"a\": 1,}", "{\"a\": \"\\x\"}", "{\"a\": \"\n\"}", "{} x", "{\"a\": 1}}", "{\"a\": --1}",
                        "{\"a\": 1e}", "{\"a\": \"\\u12g4\"}", "{\"a\": \"\xff\"}", "{\"a\": \"\xc3x\"}", "{\"a\": \"\xc0\x80\"}"}) {
    EXPECT_FALSE(accepts(s)) << s;
  }
  JsonPrefix j;
  ASSERT_TRUE(j.feed("{\"a\": 1"));
  EXPECT_FALSE(j.feed('x'));  // refused without changing the state
  EXPECT_TRUE(j.feed('}'));
  EXPECT_TRUE(j.complete());
}
