// Requests whose text fields hold invalid UTF-8 answered with INVALID_ARGUMENT naming the field.
// proto3's C++ parser rejects such a message before any handler runs, and gRPC then answers
// INTERNAL with an empty message: the client cannot tell what it did wrong. So the two requests
// that carry client text (GenerateRequest, TokenizeRequest) are deserialized here instead: into a
// twin of their message type whose string fields are bytes (built at run time from the real
// descriptor, so it cannot drift from qwen3moe.proto) whose strings are checked, then, all
// valid, into the real message. gRPC finds this through its SerializationTraits, specialized below;
// the build force-includes this header wherever the generated gRPC code is compiled or included, so
// every translation unit sees the same specialization.
#pragma once

#include <grpcpp/impl/codegen/proto_utils.h>

#include "rpc/qwen3moe.pb.h"

namespace qwen3moe::rpc {

// Parses the buffer into msg; INVALID_ARGUMENT naming the field ("chat.messages[1].content") and
// the byte offset when a string is not UTF-8, or when the bytes are no such message at all.
grpc::Status deserialize_checking_utf8(grpc::ByteBuffer* buffer, google::protobuf::Message* msg);

}  // namespace qwen3moe::rpc

namespace grpc {

template <>
class SerializationTraits<::qwen3moe::v1::GenerateRequest, void> {
 public:
  static Status Serialize(const protobuf::MessageLite& msg, ByteBuffer* bb, bool* own_buffer) {
    return GenericSerialize<ProtoBufferWriter, ::qwen3moe::v1::GenerateRequest>(msg, bb,
                                                                                own_buffer);
  }
  static Status Deserialize(ByteBuffer* buffer, protobuf::MessageLite* msg) {
    return ::qwen3moe::rpc::deserialize_checking_utf8(buffer, static_cast<protobuf::Message*>(msg));
  }
};

template <>
class SerializationTraits<::qwen3moe::v1::TokenizeRequest, void> {
 public:
  static Status Serialize(const protobuf::MessageLite& msg, ByteBuffer* bb, bool* own_buffer) {
    return GenericSerialize<ProtoBufferWriter, ::qwen3moe::v1::TokenizeRequest>(msg, bb,
                                                                                own_buffer);
  }
  static Status Deserialize(ByteBuffer* buffer, protobuf::MessageLite* msg) {
    return ::qwen3moe::rpc::deserialize_checking_utf8(buffer, static_cast<protobuf::Message*>(msg));
  }
};

}  // namespace grpc
