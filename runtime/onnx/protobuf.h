// A protocol-buffer writer for the few messages of ONNX's ModelProto graft writes: varints,
// fixed 32-bit floats, length-delimited bytes and nested messages, in the wire format.
// graft writes ONNX by hand rather than with libprotobuf and generated code: eight message
// types in one direction do not need a code generator and a library at build and run time.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace graft::onnx {

class ProtoWriter {
 public:
  // Wire types (protobuf encoding): 0 varint, 2 length-delimited, 5 fixed 32-bit.
  void varint_field(int field, uint64_t value) {
    tag(field, 0);
    varint(value);
  }
  // int64 fields are varints of the two's complement (a negative one takes ten bytes).
  void int_field(int field, int64_t value) { varint_field(field, static_cast<uint64_t>(value)); }
  void float_field(int field, float value) {
    tag(field, 5);
    char bytes[4];
    std::memcpy(bytes, &value, 4);  // little-endian hosts only (x86-64, aarch64)
    out_.append(bytes, 4);
  }
  void bytes_field(int field, std::string_view bytes) {
    tag(field, 2);
    varint(bytes.size());
    out_.append(bytes);
  }
  // The tag and length of a length-delimited field whose `length` bytes the caller writes
  // after these (a large message kept elsewhere, not copied in).
  void field_header(int field, size_t length) {
    tag(field, 2);
    varint(length);
  }
  // A nested message is its encoding as a length-delimited field.
  void message_field(int field, const ProtoWriter& message) { bytes_field(field, message.out_); }

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

  std::string out_;
};

}  // namespace graft::onnx
