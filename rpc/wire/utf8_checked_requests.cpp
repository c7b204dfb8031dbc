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

// Copies src (the twin) into dst field by field, checking every string; path names the field.
grpc::Status copy(const gp::Message& src, gp::Message* dst, const std::string& path) {
  const gp::Reflection* sr = src.GetReflection();
  const gp::Reflection* dr = dst->GetReflection();
  const gp::Descriptor* dd = dst->GetDescriptor();
  const gp::Descriptor* sd = src.GetDescriptor();
  for (int i = 0; i < dd->field_count(); ++i) {
    const FD* df = dd->field(i);
    const FD* sf = sd->FindFieldByNumber(df->number());
    const std::string name = path.empty() ? df->name() : path + "." + df->name();
    if (df->is_repeated()) {
      const int n = sr->FieldSize(src, sf);
      for (int k = 0; k < n; ++k) {
        const std::string at = name + "[" + std::to_string(k) + "]";
        switch (df->cpp_type()) {
          case FD::CPPTYPE_STRING: {
            const std::string s = sr->GetRepeatedString(src, sf, k);
            if (df->type() == FD::TYPE_STRING) {
              const size_t bad = utf8::first_invalid(s);
              if (bad != std::string::npos) return invalid(at, bad);
            }
            dr->AddString(dst, df, s);
            break;
          }
          case FD::CPPTYPE_MESSAGE: {
            const grpc::Status st =
                copy(sr->GetRepeatedMessage(src, sf, k), dr->AddMessage(dst, df), at);
            if (!st.ok()) return st;
            break;
          }
          case FD::CPPTYPE_INT32:
            dr->AddInt32(dst, df, sr->GetRepeatedInt32(src, sf, k));
            break;
          case FD::CPPTYPE_INT64:
            dr->AddInt64(dst, df, sr->GetRepeatedInt64(src, sf, k));
            break;
          case FD::CPPTYPE_UINT32:
            dr->AddUInt32(dst, df, sr->GetRepeatedUInt32(src, sf, k));
            break;
          case FD::CPPTYPE_UINT64:
            dr->AddUInt64(dst, df, sr->GetRepeatedUInt64(src, sf, k));
            break;
          case FD::CPPTYPE_FLOAT:
            dr->AddFloat(dst, df, sr->GetRepeatedFloat(src, sf, k));
            break;
          case FD::CPPTYPE_DOUBLE:
            dr->AddDouble(dst, df, sr->GetRepeatedDouble(src, sf, k));
            break;
          case FD::CPPTYPE_BOOL:
            dr->AddBool(dst, df, sr->GetRepeatedBool(src, sf, k));
            break;
          case FD::CPPTYPE_ENUM:
            dr->AddEnumValue(dst, df, sr->GetRepeatedEnumValue(src, sf, k));
            break;
        }
      }
      continue;
    }
    if (!sr->HasField(src, sf)) continue;
    switch (df->cpp_type()) {
      case FD::CPPTYPE_STRING: {
        const std::string s = sr->GetString(src, sf);
        if (df->type() == FD::TYPE_STRING) {
          const size_t bad = utf8::first_invalid(s);
          if (bad != std::string::npos) return invalid(name, bad);
        }
        dr->SetString(dst, df, s);
        break;
      }
      case FD::CPPTYPE_MESSAGE: {
        const grpc::Status st = copy(sr->GetMessage(src, sf), dr->MutableMessage(dst, df), name);
        if (!st.ok()) return st;
        break;
      }
      case FD::CPPTYPE_INT32:
        dr->SetInt32(dst, df, sr->GetInt32(src, sf));
        break;
      case FD::CPPTYPE_INT64:
        dr->SetInt64(dst, df, sr->GetInt64(src, sf));
        break;
      case FD::CPPTYPE_UINT32:
        dr->SetUInt32(dst, df, sr->GetUInt32(src, sf));
        break;
      case FD::CPPTYPE_UINT64:
        dr->SetUInt64(dst, df, sr->GetUInt64(src, sf));
        break;
      case FD::CPPTYPE_FLOAT:
        dr->SetFloat(dst, df, sr->GetFloat(src, sf));
        break;
      case FD::CPPTYPE_DOUBLE:
        dr->SetDouble(dst, df, sr->GetDouble(src, sf));
        break;
      case FD::CPPTYPE_BOOL:
        dr->SetBool(dst, df, sr->GetBool(src, sf));
        break;
      case FD::CPPTYPE_ENUM:
        dr->SetEnumValue(dst, df, sr->GetEnumValue(src, sf));
        break;
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
  msg->Clear();
  return copy(*parsed, msg, "");
}

}  // namespace qwen3moe::rpc
