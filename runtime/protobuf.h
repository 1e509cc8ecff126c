// ProtoWriter: the protocol-buffer wire format for the messages graft writes and never
// reads: TensorBoard's Event and Summary (runtime/event_file.h, runtime/tensorboard.cpp) and
// ONNX's ModelProto (runtime/onnx/graph.h). Varints, fixed 32- and 64-bit numbers,
// length-delimited bytes and nested messages, appended to one message; every call returns
// the writer, so a small message is one expression.
// Written by hand rather than with libprotobuf and generated code: a dozen message types in
// one direction need no code generator at build time and no library at run time; the
// tests read what graft writes with the reference readers (TensorBoard's, onnx's).
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace graft {

class ProtoWriter {
 public:
  // Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit.
  ProtoWriter& varint_field(int field, uint64_t value) {
    tag(field, 0);
    varint(value);
    return *this;
  }
  // int64 fields are varints of the two's complement (a negative one takes ten bytes).
  ProtoWriter& int_field(int field, int64_t value) { return varint_field(field, static_cast<uint64_t>(value)); }
  ProtoWriter& float_field(int field, float value) {
    tag(field, 5);
    return fixed(&value, 4);
  }
  ProtoWriter& double_field(int field, double value) {
    tag(field, 1);
    return fixed(&value, 8);
  }
  ProtoWriter& bytes_field(int field, std::string_view bytes) {
    field_header(field, bytes.size());
    out_.append(bytes);
    return *this;
  }
  // A nested message is its encoding as a length-delimited field.
  ProtoWriter& message_field(int field, const ProtoWriter& message) { return bytes_field(field, message.out_); }
  // A packed repeated double: the values' fixed 64-bit encodings as one length-delimited field.
  ProtoWriter& packed_doubles_field(int field, std::span<const double> values) {
    field_header(field, values.size() * 8);
    for (double v : values) fixed(&v, 8);
    return *this;
  }
  // The tag and length of a length-delimited field whose `length` bytes the caller writes
  // after these (a large message kept elsewhere, not copied in).
  ProtoWriter& field_header(int field, size_t length) {
    tag(field, 2);
    varint(length);
    return *this;
  }

  const std::string& bytes() const { return out_; }

 private:
  void tag(int field, int wire_type) { varint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type)); }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  // Fixed-width numbers are little-endian in the wire format, as in memory on the hosts
  // graft builds for (x86-64, aarch64).
  ProtoWriter& fixed(const void* value, size_t size) {
    char bytes[8];
    std::memcpy(bytes, value, size);
    out_.append(bytes, size);
    return *this;
  }

  std::string out_;
};

}  // namespace graft
