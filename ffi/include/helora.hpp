// helora.hpp: RAII wrappers over the C ABI (helora.h) for C++17. Every handle and buffer
// frees itself; a failed call throws helora::Error with its code and message.
#ifndef HELORA_HPP
#define HELORA_HPP

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "helora.h"

namespace helora {

class Error : public std::runtime_error {
public:
    explicit Error(helora_status status)
        : std::runtime_error(std::string(helora_status_name(status)) + ": " + helora_last_error()),
          status(status) {}
    helora_status status;
};

inline void check(helora_status status) {
    if (status != HELORA_OK) throw Error(status);
}

// A handle that frees itself with its helora_…_free.
template <typename T, helora_status (*Free)(T *)>
struct Deleter {
    void operator()(T *handle) const noexcept { Free(handle); }
};
template <typename T, helora_status (*Free)(T *)>
using Handle = std::unique_ptr<T, Deleter<T, Free>>;

// Bytes that helora allocated.
class Buffer {
public:
    Buffer() = default;
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    Buffer(Buffer &&other) noexcept : raw_(other.raw_) { other.raw_ = {nullptr, 0}; }
    ~Buffer() { helora_buffer_free(&raw_); }
    // For a call to fill (what it held is freed first).
    helora_buffer *out() {
        helora_buffer_free(&raw_);
        return &raw_;
    }
    const uint8_t *data() const { return raw_.data; }
    size_t size() const { return raw_.len; }

private:
    helora_buffer raw_{nullptr, 0};
};

class Params {
public:
    Params() {
        helora_params *raw = nullptr;
        check(helora_params_new(&raw));
        handle_.reset(raw);
    }
    const helora_params *get() const { return handle_.get(); }

private:
    Handle<helora_params, helora_params_free> handle_;
};

class Request {
public:
    explicit Request(helora_request *raw) : handle_(raw) {}
    const helora_request *get() const { return handle_.get(); }
    Buffer encode() const {
        Buffer bytes;
        check(helora_request_encode(get(), bytes.out()));
        return bytes;
    }
    size_t output_len() const {
        size_t len = 0;
        check(helora_request_output_len(get(), &len));
        return len;
    }

private:
    Handle<helora_request, helora_request_free> handle_;
};

class Client {
public:
    // A fresh secret key for the server of `manifest`.
    Client(const Params &params, const Buffer &manifest) {
        helora_client *raw = nullptr;
        check(helora_client_new(params.get(), manifest.data(), manifest.size(), &raw));
        handle_.reset(raw);
    }
    // The key saved at `path` (helora_client_save_keys).
    Client(const Params &params, const Buffer &manifest, const std::string &path) {
        helora_client *raw = nullptr;
        check(helora_client_load_keys(params.get(), manifest.data(), manifest.size(),
                                      path.c_str(), &raw));
        handle_.reset(raw);
    }
    void key_upload(Buffer &eval_keys, Buffer &public_key) const {
        check(helora_client_key_upload(handle_.get(), eval_keys.out(), public_key.out()));
    }
    void save_keys(const std::string &path) const {
        check(helora_client_save_keys(handle_.get(), path.c_str()));
    }
    Request encrypt(uint32_t layer, const std::vector<const char *> &modules,
                    const std::vector<float> &x) const {
        helora_request *raw = nullptr;
        check(helora_client_encrypt(handle_.get(), layer, modules.data(), modules.size(),
                                    x.data(), x.size(), &raw));
        return Request(raw);
    }
    std::vector<float> decrypt(const Request &request, const Buffer &reply) const {
        std::vector<float> out(request.output_len());
        check(helora_client_decrypt(handle_.get(), request.get(), reply.data(), reply.size(),
                                    out.data(), out.size()));
        return out;
    }

private:
    Handle<helora_client, helora_client_free> handle_;
};

class Server {
public:
    Server(const Params &params, const std::string &adapter_dir, bool pll) {
        helora_server *raw = nullptr;
        check(helora_server_load(params.get(), adapter_dir.c_str(), pll, &raw));
        handle_.reset(raw);
    }
    Buffer manifest() const {
        Buffer bytes;
        check(helora_server_manifest(handle_.get(), bytes.out()));
        return bytes;
    }
    void register_client(uint64_t id, const Buffer &eval_keys, const Buffer &public_key) const {
        check(helora_server_register(handle_.get(), id, eval_keys.data(), eval_keys.size(),
                                     public_key.data(), public_key.size()));
    }
    Buffer apply(uint64_t id, const Buffer &request) const {
        Buffer reply;
        check(helora_server_apply(handle_.get(), id, request.data(), request.size(), reply.out()));
        return reply;
    }

private:
    Handle<helora_server, helora_server_free> handle_;
};

class Remote {
public:
    // adapter and ca_cert: "" for the server's only adapter, the system's roots alone.
    Remote(const Params &params, const std::string &url, const std::string &token,
           const std::string &adapter = "", const std::string &ca_cert = "") {
        helora_remote *raw = nullptr;
        check(helora_remote_connect(params.get(), url.c_str(), token.c_str(), adapter.c_str(),
                                    ca_cert.empty() ? nullptr : ca_cert.c_str(), &raw));
        handle_.reset(raw);
    }
    Buffer manifest() const {
        Buffer bytes;
        check(helora_remote_manifest(handle_.get(), bytes.out()));
        return bytes;
    }
    void register_keys(const Buffer &eval_keys, const Buffer &public_key) const {
        check(helora_remote_register(handle_.get(), eval_keys.data(), eval_keys.size(),
                                     public_key.data(), public_key.size()));
    }
    Buffer apply(const Buffer &request) const {
        Buffer reply;
        check(helora_remote_apply(handle_.get(), request.data(), request.size(), reply.out()));
        return reply;
    }

private:
    Handle<helora_remote, helora_remote_free> handle_;
};

}  // namespace helora

#endif
