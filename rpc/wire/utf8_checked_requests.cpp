#include "rpc/wire/utf8_checked_requests.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/text/utf8.h"

namespace qwen3moe::rpc {
namespace {

namespace gp = google::protobuf;
using FD = gp::FieldDescriptor;

// qwen3moe.proto again, every string field made bytes (same numbers, same wire format), in a
// pool of its own: parsing into it checks nothing, so the check and its message are ours.
struct BytesTwin {
  gp::DescriptorPool pool;
  std::unique_ptr<gp::DynamicMessageFactory> factory;

  BytesTwin() {
    gp::FileDescriptorProto file;
    ::qwen3moe::v1::GenerateRequest::descriptor()->file()->CopyTo(&file);
    for (gp::DescriptorProto& m : *file.mutable_message_type()) make_bytes(m);
    const gp::FileDescriptor* built = pool.BuildFile(file);
    GOOGLE_CHECK(built != nullptr);
    factory = std::make_unique<gp::DynamicMessageFactory>(&pool);
  }
  static void make_bytes(gp::DescriptorProto& m) {
    for (gp::FieldDescriptorProto& f : *m.mutable_field())
      if (f.type() == gp::FieldDescriptorProto::TYPE_STRING)
        f.set_type(gp::FieldDescriptorProto::TYPE_BYTES);
    for (gp::DescriptorProto& nested : *m.mutable_nested_type()) make_bytes(nested);
  }
  const gp::Message* prototype(const std::string& full_name) {
    const gp::Descriptor* d = pool.FindMessageTypeByName(full_name);
    return d ? factory->GetPrototype(d) : nullptr;
  }
};

BytesTwin& twin() {
  static BytesTwin* t = new BytesTwin();  // built once, kept for the process (thread-safe init)
  return *t;
}

grpc::Status invalid(const std::string& field, size_t at) {
  return {grpc::StatusCode::INVALID_ARGUMENT,
          field + ": invalid UTF-8 at byte offset " + std::to_string(at)};
}

// Checks every string field of src (the twin, parsed) that `real` declares a string, through
// nested and repeated messages; path names the field.
grpc::Status check_strings(const gp::Message& src, const gp::Descriptor* real,
                           const std::string& path) {
  const gp::Reflection* r = src.GetReflection();
  const gp::Descriptor* twin_d = src.GetDescriptor();
  for (int i = 0; i < real->field_count(); ++i) {
    const FD* rf = real->field(i);
    if (rf->type() != FD::TYPE_STRING && rf->cpp_type() != FD::CPPTYPE_MESSAGE) continue;
    const FD* f = twin_d->FindFieldByNumber(rf->number());
    const std::string name = path.empty() ? rf->name() : path + "." + rf->name();
    const int n = rf->is_repeated() ? r->FieldSize(src, f) : int(r->HasField(src, f));
    for (int k = 0; k < n; ++k) {
      const std::string at = rf->is_repeated() ? name + "[" + std::to_string(k) + "]" : name;
      if (rf->type() == FD::TYPE_STRING) {
        std::string scratch;
        const std::string& v = rf->is_repeated()
                                   ? r->GetRepeatedStringReference(src, f, k, &scratch)
                                   : r->GetStringReference(src, f, &scratch);
        const size_t bad = utf8::first_invalid(v);
        if (bad != std::string::npos) return invalid(at, bad);
      } else {
        const gp::Message& m =
            rf->is_repeated() ? r->GetRepeatedMessage(src, f, k) : r->GetMessage(src, f);
        const grpc::Status st = check_strings(m, rf->message_type(), at);
        if (!st.ok()) return st;
      }
    }
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::Status deserialize_checking_utf8(grpc::ByteBuffer* buffer, gp::Message* msg) {
  if (buffer == nullptr) return {grpc::StatusCode::INTERNAL, "no payload"};
  std::vector<grpc::Slice> slices;
  const grpc::Status dumped = buffer->Dump(&slices);
  buffer->Clear();
  if (!dumped.ok()) return dumped;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  const gp::Message* proto = twin().prototype(msg->GetDescriptor()->full_name());
  if (proto == nullptr) return {grpc::StatusCode::INTERNAL, "no twin of " + msg->GetTypeName()};
  std::unique_ptr<gp::Message> parsed(proto->New());
  if (!parsed->ParseFromString(bytes))
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "the request is not a valid " + msg->GetDescriptor()->name() + " message"};
  const grpc::Status checked = check_strings(*parsed, msg->GetDescriptor(), "");
  if (!checked.ok()) return checked;
  // Every string is UTF-8 now, so the real message parses the same bytes.
  if (!msg->ParseFromString(bytes))
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "the request is not a valid " + msg->GetDescriptor()->name() + " message"};
  return grpc::Status::OK;
}

}  // namespace qwen3moe::rpc
