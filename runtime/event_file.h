// TensorBoard event files without libprotobuf: the TFRecord framing (length, masked CRC32C,
// payload, masked CRC32C), the Event message (encoded with runtime/protobuf.h, as ONNX's
// messages are), and an append-only event file that stops (saying so once) when a write
// fails. The tests read the files back with TensorBoard's own reader.
#pragma once
#include <cstdint>
#include <cstdio>
#include <iosfwd>
#include <string>
#include <string_view>

namespace graft::tb {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), continuing from `crc`.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t n);
// One TFRecord: uint64 length, masked CRC of the length, payload, masked CRC of the payload.
std::string tfrecord(std::string_view payload);

// Event{wall_time, step, summary}: what every record after the first holds.
std::string summary_event(double wall_time, int64_t step, std::string_view summary);

// events.out.tfevents.<seconds>.<host>.<pid>.graft, as TensorFlow names its files.
std::string event_file_name();

// An event file being written. The constructor creates the file and writes the
// file_version event, throwing graft::Error naming the path if it cannot; later write
// failures (a full disk) never throw: the file stops, and `warn` is told once why.
class EventFile {
 public:
  EventFile(std::string path, std::ostream& warn);
  ~EventFile();
  EventFile(const EventFile&) = delete;
  EventFile& operator=(const EventFile&) = delete;

  void write_summary(int64_t step, std::string_view summary);
  void flush();
  bool ok() const { return file_ != nullptr; }
  const std::string& path() const { return path_; }

 private:
  void write_record(std::string_view payload);
  void stop(int err);

  std::string path_;
  std::ostream& warn_;
  std::FILE* file_ = nullptr;
};

double wall_time_now();

}  // namespace graft::tb
