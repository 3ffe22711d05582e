// The web chat page of `lmlab serve` (GET /).
#pragma once
#include <string>

namespace lmlab::serve {
const std::string& web_page();
}
