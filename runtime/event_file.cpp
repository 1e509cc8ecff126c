// TFRecord framing, CRC-32C, the Event message and the event file (runtime/event_file.h).
#include "runtime/event_file.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ostream>

#include "base/error.h"
#include "runtime/protobuf.h"

namespace graft::tb {

namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kCrcTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view payload) {
  std::string out;
  put_le(out, payload.size(), 8);
  put_le(out, masked_crc32c(out.data(), 8), 4);
  out.append(payload);
  put_le(out, masked_crc32c(payload.data(), payload.size()), 4);
  return out;
}

std::string summary_event(double wall_time, int64_t step, std::string_view summary) {
  // Event: wall_time = 1, step = 2, file_version = 3, summary = 5.
  return ProtoWriter().double_field(1, wall_time).varint_field(2, uint64_t(step)).bytes_field(5, summary).bytes();
}

double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string event_file_name() {
  char host[256] = "localhost";
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  const auto seconds = static_cast<long long>(wall_time_now());
  return "events.out.tfevents." + std::to_string(seconds) + "." + host + "." + std::to_string(::getpid()) + ".graft";
}

EventFile::EventFile(std::string path, std::ostream& warn) : path_(std::move(path)), warn_(warn) {
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) fail("cannot create the TensorBoard event file ", path_, ": ", std::strerror(errno));
  const std::string first = tfrecord(ProtoWriter().double_field(1, wall_time_now()).bytes_field(3, "brain.Event:2").bytes());
  if (std::fwrite(first.data(), 1, first.size(), file_) != first.size() || std::fflush(file_) != 0) {
    const int err = errno;
    std::fclose(file_);
    file_ = nullptr;
    fail("cannot write the TensorBoard event file ", path_, ": ", std::strerror(err));
  }
}

EventFile::~EventFile() {
  if (file_) std::fclose(file_);  // flushed at every epoch's end; a failure here has no one to tell
}

void EventFile::write_summary(int64_t step, std::string_view summary) {
  write_record(summary_event(wall_time_now(), step, summary));
}

void EventFile::write_record(std::string_view payload) {
  if (!file_) return;
  const std::string record = tfrecord(payload);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) stop(errno);
}

void EventFile::flush() {
  if (file_ && std::fflush(file_) != 0) stop(errno);
}

// A write failed: training goes on without TensorBoard, and the user hears it once.
void EventFile::stop(int err) {
  std::fclose(file_);
  file_ = nullptr;
  warn_ << "graft: TensorBoard logging stopped: writing " << path_ << " failed (" << std::strerror(err)
        << "); training continues, the event file holds what was written before" << std::endl;
}

}  // namespace graft::tb
