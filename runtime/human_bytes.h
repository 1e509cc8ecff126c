// A byte count for people: "512 B", "1.5 KiB", "12.34 MiB", "2.00 GiB" (binary units).
#pragma once
#include <cstddef>
#include <string>

namespace graft {

std::string human_bytes(size_t bytes);

}  // namespace graft
