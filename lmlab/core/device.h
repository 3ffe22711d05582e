// Devices. CPU is the reference backend; CUDA is reserved for the later backend.
#pragma once
#include <cstdint>

namespace lmlab {
enum class Device : uint8_t { CPU, CUDA };
inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }
}  // namespace lmlab
